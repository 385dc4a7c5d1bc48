"""Evaluate a DWI model on held-out pictures: problems named, answer text, acquisition text, latency."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lcid.metrics.text import EMBEDDING_MODEL, corpus_bleu, embedding_cosine
from lcid.vlm.dwi.text import problems_named
from lcid.vlm.dwi.visibility import IMAGE_VISIBLE, TEXT_VISIBLE
from lcid.vlm.ensemble import VLMEnsemble, predict_images
from lcid.vlm.image import load_image
from lcid.vlm.model import FlamingoVLM
from lcid.vlm.predict import Prediction, detected, final_answer
from lcid.vlm.prompt import DEFAULT_QUESTION, build_prompt

#: Fixed head probability at or above which a problem counts as named (the "fixed" scores;
#: the "calibrated" ones use the model's own thresholds, :meth:`FlamingoVLM.threshold`).
THRESHOLD = 0.5
#: A wrong acquisition text for the text-effect test: plenty of directions, high b.
FALSE_ACQ = "64 directions, b = 0 to 3000"


def problem_scores(truth: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], problems: Sequence[str]) -> dict[str, Any]:
    """Per-problem precision, recall, F1 and support (scikit-learn), and the macro F1 over the
    problems with at least one true case.

    >>> problem_scores([["noise"], []], [["noise"], ["noise"]], ["noise"])["noise"]["precision"]
    0.5
    """
    from sklearn.metrics import precision_recall_fscore_support

    y_true = np.array([[p in t for p in problems] for t in truth], dtype=int).reshape(len(truth), len(problems))
    y_pred = np.array([[p in q for p in problems] for q in predicted], dtype=int).reshape(len(truth), len(problems))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0,
                                                                     labels=list(range(len(problems))))
    out: dict[str, Any] = {
        p: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
        for i, p in enumerate(problems)
    }
    present = [float(f1[i]) for i in range(len(problems)) if support[i] > 0]
    out["macro_f1"] = float(np.mean(present)) if present else float("nan")
    return out


def predict_rows(
    model: FlamingoVLM | VLMEnsemble, rows: Sequence[dict[str, Any]], *, acq: str | None | bool = True,
    batch_size: int = 16, generate: bool = True, question: str | None = None,
) -> list[Prediction]:
    """Predictions for manifest rows; ``acq=True`` uses each row's own text, ``None`` none, a string that text."""
    cache: dict[str, np.ndarray] = {}
    out: list[Prediction] = []
    tokens = model.cfg.answer_tokens if generate else 0
    for start in tqdm(range(0, len(rows), batch_size), desc="eval", leave=False):
        chunk = rows[start : start + batch_size]
        for r in chunk:
            if r["image"] not in cache:
                cache[r["image"]] = load_image(r["image"])
        prompts = [build_prompt(question or r["question"], acq=r.get("acq") if acq is True else (acq or None),
                                findings=r.get("findings")) for r in chunk]
        out += predict_images(model, [cache[r["image"]] for r in chunk], prompts, max_new_tokens=tokens)
    return out


def head_labels(prediction: Prediction, *, threshold: float = THRESHOLD) -> tuple[str, ...]:
    """Problems the head gives at least ``threshold``."""
    return tuple(label for label, p in prediction.head if p >= threshold)


def evaluate_dwi(
    model: FlamingoVLM | VLMEnsemble, rows: Sequence[dict[str, Any]], *, embeddings: bool = True, latency_samples: int = 20,
    acq_effect_images: int = 150,
) -> dict[str, Any]:
    """All scores of ``model`` on manifest ``rows`` (fractions in [0, 1], seconds).

    Keys: ``n``, ``head`` and ``text`` (per-problem scores for image-visible and text-visible
    problems, each with ``macro_f1``; ``head`` at the fixed :data:`THRESHOLD`),
    ``head_calibrated`` (the same at the model's own per-problem ``thresholds``, also
    reported; equal to ``head`` for a model without saved thresholds), ``answer`` (the problems the
    answer shown to the user names, :func:`lcid.vlm.predict.final_answer`: the generated text, or
    one written for the head's problems where the two disagree; ``answer_is_generated`` the share
    of answers left as generated), ``bleu1``..``bleu4`` and ``embedding_cosine`` of the generated
    text (``answer_bleu1``.. and ``answer_embedding_cosine`` of the shown answers),
    ``acquisition_effect``, ``latency_s`` (median, p90 and threads of one full answer;
    ``latency_uncached_s`` the same without the key-value cache), and
    ``examples`` (a few answers with their references).
    """
    predictions = predict_rows(model, rows)
    truth = [r["labels"] for r in rows]
    thresholds = {label: model.threshold(label) for label in model.cfg.head_labels}
    by_head = [head_labels(p) for p in predictions]
    by_calibrated = [detected(model, p) for p in predictions]
    by_text = [problems_named(p.generated) for p in predictions]
    answers = [final_answer(model, p, question=r["question"]) for p, r in zip(predictions, rows, strict=True)]
    by_answer = [problems_named(a) for a in answers]
    result: dict[str, Any] = {"n": len(rows), "threshold": THRESHOLD, "thresholds": thresholds,
                              "thresholds_record": dict(model.thresholds_record),
                              "visible_problems": list(IMAGE_VISIBLE)}
    for name, predicted in (("head", by_head), ("head_calibrated", by_calibrated), ("text", by_text),
                            ("answer", by_answer)):
        result[name] = {
            "image_visible": problem_scores(truth, predicted, IMAGE_VISIBLE),
            "text_visible": problem_scores(truth, predicted, TEXT_VISIBLE),
        }
    result["answer_is_generated"] = sum(a == p.generated for a, p in zip(answers, predictions, strict=True)) / len(rows)
    generated = [p.generated for p in predictions]
    references = [r["answer"] for r in rows]
    for n in range(1, 5):
        result[f"bleu{n}"] = corpus_bleu(generated, references, max_n=n)
        result[f"answer_bleu{n}"] = corpus_bleu(answers, references, max_n=n)
    if embeddings:
        result["embedding_cosine"] = float(embedding_cosine(generated, references).mean())
        result["answer_embedding_cosine"] = float(embedding_cosine(answers, references).mean())
        result["embedding_model"] = EMBEDDING_MODEL
    result["acquisition_effect"] = acquisition_effect(model, rows, limit=acq_effect_images)
    result["latency_s"] = latency(model, rows, samples=latency_samples)
    result["latency_uncached_s"] = latency(model, rows, samples=latency_samples, use_cache=False)
    result["examples"] = [
        {"image": r["image"], "question": r["question"], "acq": r.get("acq"), "labels": r["labels"],
         "answer": a, "generated": p.generated, "reference": r["answer"], "head": [[label, round(q, 3)] for label, q in p.head[:3]]}
        for r, p, a in list(zip(rows, predictions, answers, strict=True))[:: max(1, len(rows) // 8)][:8]
    ]
    return result


def acquisition_effect(model: FlamingoVLM | VLMEnsemble, rows: Sequence[dict[str, Any]], *, limit: int) -> dict[str, Any]:
    """The same pictures asked with their true acquisition text, with none and with a false one.

    Reports the head's macro F1 on image-visible problems and its few_directions rate under
    each, and the mean absolute change of image-visible probabilities caused by the text.
    """
    with_acq = [r for r in rows if r.get("acq")][:limit]
    if not with_acq:
        return {}
    out: dict[str, Any] = {"n": len(with_acq)}
    probs: dict[str, np.ndarray] = {}
    for name, acq in (("true_text", True), ("no_text", None), ("false_text", FALSE_ACQ)):
        preds = predict_rows(model, with_acq, acq=acq, generate=False)
        visible_truth = [[p for p in r["labels"] if p in IMAGE_VISIBLE] for r in with_acq]
        out[name] = {
            "image_visible_macro_f1": problem_scores(visible_truth, [head_labels(p) for p in preds], IMAGE_VISIBLE)["macro_f1"],
            "few_directions_rate": float(np.mean(["few_directions" in head_labels(p) for p in preds])),
        }
        probs[name] = np.array([[dict(p.head)[label] for label in IMAGE_VISIBLE] for p in preds])
    out["true_few_directions_rate"] = float(np.mean(["few_directions" in r["labels"] for r in with_acq]))
    out["mean_abs_change_visible_no_text"] = float(np.abs(probs["true_text"] - probs["no_text"]).mean())
    out["mean_abs_change_visible_false_text"] = float(np.abs(probs["true_text"] - probs["false_text"]).mean())
    return out


def latency(
    model: FlamingoVLM | VLMEnsemble, rows: Sequence[dict[str, Any]], *, samples: int, use_cache: bool = True
) -> dict[str, float]:
    """Wall time (s) of one full answer (image load, head, generation), one question at a time;
    ``use_cache=False`` times the generation without the key-value cache, for comparison."""
    times = []
    for r in rows[:samples]:
        began = time.perf_counter()
        prompt = build_prompt(r["question"] or DEFAULT_QUESTION, acq=r.get("acq"), findings=r.get("findings"))
        predict_images(model, [load_image(r["image"])], [prompt], max_new_tokens=model.cfg.answer_tokens,
                       use_cache=use_cache)
        times.append(time.perf_counter() - began)
    if not times:
        return {}
    times.sort()
    return {"median": statistics.median(times), "p90": times[int(0.9 * (len(times) - 1))],
            "threads": torch.get_num_threads(), "samples": len(times)}
