"""Evaluate a model on a VQA test split: accuracy by answer type, BLEU, embedding similarity."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lcid.io.vqa import VQASample, normalize_answer
from lcid.metrics.text import EMBEDDING_MODEL, corpus_bleu, embedding_cosine
from lcid.metrics.vqa import accuracy, exact_match, grouped_accuracy, majority_answers
from lcid.vlm.ensemble import VLMEnsemble, predict_images
from lcid.vlm.image import load_image
from lcid.vlm.model import FlamingoVLM
from lcid.vlm.predict import Prediction, final_answer
from lcid.vlm.prompt import build_prompt


def predict_samples(
    model: FlamingoVLM | VLMEnsemble, samples: Sequence[VQASample], *, batch_size: int = 32
) -> list[Prediction]:
    """Model (or ensemble) predictions for every sample (images loaded once each)."""
    cache: dict[str, np.ndarray] = {}
    out: list[Prediction] = []
    for start in tqdm(range(0, len(samples), batch_size), desc="eval", leave=False):
        chunk = samples[start : start + batch_size]
        for s in chunk:
            key = str(s.image_path)
            if key not in cache:
                cache[key] = load_image(s.image_path)
        images = [cache[str(s.image_path)] for s in chunk]
        out += predict_images(model, images, [build_prompt(s.question) for s in chunk])
    return out


def score(
    samples: Sequence[VQASample],
    answers: Sequence[str],
    *,
    train_samples: Sequence[VQASample] = (),
    embeddings: bool = True,
) -> dict[str, Any]:
    """All scores of ``answers`` against the samples' references (fractions in [0, 1]).

    Keys: ``closed_accuracy``, ``open_accuracy``, ``overall_accuracy``, ``bleu1``..``bleu4``,
    ``embedding_cosine`` (mean, with ``embedding_model``), ``by_question_type``,
    ``by_organ``, ``n``, and with ``train_samples`` the ``majority_baseline_*`` accuracies
    (each question answered with the most frequent training answer of its answer type).
    """
    answers = [normalize_answer(a) for a in answers]
    refs = [s.answer for s in samples]
    correct = exact_match(answers, refs)
    closed = [c for c, s in zip(correct, samples, strict=True) if s.answer_type == "closed"]
    open_ = [c for c, s in zip(correct, samples, strict=True) if s.answer_type == "open"]
    result: dict[str, Any] = {
        "n": len(samples),
        "n_closed": len(closed),
        "n_open": len(open_),
        "closed_accuracy": accuracy(closed),
        "open_accuracy": accuracy(open_),
        "overall_accuracy": accuracy(correct),
    }
    for n in range(1, 5):
        result[f"bleu{n}"] = corpus_bleu(answers, refs, max_n=n)
    if embeddings:
        result["embedding_cosine"] = float(embedding_cosine(answers, refs).mean())
        result["embedding_model"] = EMBEDDING_MODEL
    result["by_question_type"] = grouped_accuracy(correct, [s.question_type for s in samples])
    result["by_organ"] = grouped_accuracy(correct, [s.organ for s in samples])
    if train_samples:
        majority = majority_answers([s.answer for s in train_samples], [s.answer_type for s in train_samples])
        base = exact_match([majority.get(s.answer_type, "") for s in samples], refs)
        result["majority_baseline_closed"] = accuracy([b for b, s in zip(base, samples, strict=True) if s.answer_type == "closed"])
        result["majority_baseline_open"] = accuracy([b for b, s in zip(base, samples, strict=True) if s.answer_type == "open"])
        result["majority_baseline_overall"] = accuracy(base)
    return result


def evaluate(
    model: FlamingoVLM | VLMEnsemble,
    samples: Sequence[VQASample],
    *,
    train_samples: Sequence[VQASample] = (),
    embeddings: bool = True,
) -> dict[str, Any]:
    """Scores of the model's final answers, plus the accuracies of the generated text alone."""
    predictions = predict_samples(model, samples)
    answers = [final_answer(model, p, question=s.question) for p, s in zip(predictions, samples, strict=True)]
    result = score(samples, answers, train_samples=train_samples, embeddings=embeddings)
    generated = score(samples, [p.generated for p in predictions], embeddings=False)
    result["generated"] = {k: generated[k] for k in ("closed_accuracy", "open_accuracy", "overall_accuracy", "bleu1")}
    result["answer_source"] = "head" if model.cfg.head == "multiclass" else "generated"
    return result
