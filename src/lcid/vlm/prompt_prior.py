"""A text-only answer model over the prompt, multiplied into a VQA ensemble's answer probabilities.

On VQA-RAD a linear classifier over the question's word and character n-grams answers the
closed questions of the group-aware hold-out as well as the from-scratch image models do
(docs/vqa.md): the small CNN adds little to the language prior, and the two make different
mistakes. Their product of experts,

    p(answer) ∝ p_ensemble(answer) ** (1 - w) * p_prior(answer) ** w,

is better calibrated than either (held-out log-likelihood) and more often right. ``w`` is
chosen on held-out questions by log-likelihood (:func:`choose_weight`), never by test scores.

The classifier is scikit-learn's (TF-IDF n-grams and multinomial logistic regression), saved
with skops (no pickle: loading refuses types outside scikit-learn's own). It reads the same
prompt text the language model reads (:func:`lcid.vlm.prompt.build_prompt`), so it sees
acquisition text and earlier turns exactly as the model does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lcid.errors import InputError
from lcid.io.estimator_files import read_estimator, write_estimator
from lcid.vlm.predict import Prediction

PRIOR_FILE = "prompt_prior.skops"
RECORD_FILE = "prompt_prior.json"
#: Inverse regularisation of the logistic regression: the best 5-fold grouped cross-validated
#: log-loss among 1, 3, 10, 30 and 100 on the hold-out's training part (docs/vqa.md).
DEFAULT_C = 3.0
#: Weights tried by :func:`choose_weight` (1.0, the prior alone, would ignore the image).
WEIGHT_GRID = tuple(round(0.1 * i, 1) for i in range(10))
#: N-grams kept per kind (words, characters): on the hold-out, 1,500 each is within 0.005 of the
#: best log-likelihood of any size tried (500 to all 11,432) at a tenth of the all-n-gram file.
MAX_FEATURES = 1500
_FLOOR = 1e-6  # probability of an answer the prior never saw in training


def fit_classifier(prompts: Sequence[str], answers: Sequence[str], *, C: float = DEFAULT_C) -> Any:
    """Fit the text-only classifier: the :data:`MAX_FEATURES` most frequent word 1-2-grams and
    character 2-4-grams (TF-IDF, sublinear) into a multinomial logistic regression over the
    training answers. Coefficients are kept as float32 (half the file; same answers)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    if len(set(answers)) < 2:
        raise InputError("a prompt prior needs training questions with at least two different answers")
    features = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=MAX_FEATURES),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, max_features=MAX_FEATURES),
    )
    classifier = make_pipeline(features, LogisticRegression(C=C, max_iter=3000)).fit(list(prompts), list(answers))
    regression = classifier[-1]
    regression.coef_ = regression.coef_.astype(np.float32)
    for _, vectorizer in features.transformer_list:
        if hasattr(vectorizer, "stop_words_"):  # the pruned n-grams: only for inspection, often large
            del vectorizer.stop_words_
    return classifier


class PromptPrior:
    """A fitted classifier and the weight it gets in the product with the model's probabilities."""

    def __init__(self, classifier: Any, weight: float, record: dict[str, Any] | None = None) -> None:
        self.classifier = classifier
        self.weight = checked_weight(weight)
        self.record = dict(record or {})

    def probabilities(self, prompts: Sequence[str], labels: Sequence[str]) -> np.ndarray:
        """``(len(prompts), len(labels))`` probabilities over the model's head labels (answers
        the classifier never saw get a small floor), each row summing to 1."""
        out = np.full((len(prompts), len(labels)), _FLOOR)
        column = {label: j for j, label in enumerate(labels)}
        proba = self.classifier.predict_proba(list(prompts))
        for k, answer in enumerate(self.classifier.classes_):
            if answer in column:
                out[:, column[answer]] = np.maximum(proba[:, k], _FLOOR)
        return out / out.sum(axis=1, keepdims=True)

    def apply(self, predictions: Sequence[Prediction], prompts: Sequence[str], labels: Sequence[str]) -> list[Prediction]:
        """The predictions with their head probabilities multiplied by the prior's (:func:`blend`)."""
        model_probs = head_matrix(predictions, labels)
        mixed = blend(model_probs, self.probabilities(prompts, labels), self.weight)
        return [
            Prediction(generated=p.generated,
                       head=tuple(sorted(zip(labels, map(float, row), strict=True), key=lambda lp: -lp[1])))
            for p, row in zip(predictions, mixed, strict=True)
        ]

    # ------------------------------------------------------------------ files
    def save(self, folder: str | Path) -> None:
        """Write ``prompt_prior.skops`` and ``prompt_prior.json`` (weight and how it was fitted) into ``folder``."""
        write_estimator(folder, PRIOR_FILE, self.classifier, RECORD_FILE, {**self.record, "weight": self.weight})

    @classmethod
    def load(cls, folder: str | Path) -> PromptPrior | None:
        """The prior saved in ``folder``; ``None`` when it has none."""
        saved = read_estimator(folder, PRIOR_FILE, RECORD_FILE)
        if saved is None:
            return None
        classifier, record = saved
        weight = record.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise InputError(f"{Path(folder) / RECORD_FILE} has no numeric weight")
        return cls(classifier, weight, record)


def checked_weight(weight: float) -> float:
    """``weight`` as a float in ``[0, 1)``, else :class:`InputError` (1 would ignore the image)."""
    if not 0.0 <= weight < 1.0:
        raise InputError(f"prompt prior weight must be in [0, 1), not {weight}")
    return float(weight)


def head_matrix(predictions: Sequence[Prediction], labels: Sequence[str]) -> np.ndarray:
    """Head probabilities as a ``(len(predictions), len(labels))`` array in ``labels`` order."""
    column = {label: j for j, label in enumerate(labels)}
    out = np.zeros((len(predictions), len(labels)))
    for i, prediction in enumerate(predictions):
        for label, p in prediction.head:
            out[i, column[label]] = p
    return out


def blend(model_probs: np.ndarray, prior_probs: np.ndarray, weight: float) -> np.ndarray:
    """Normalised weighted geometric mean ``model ** (1 - w) * prior ** w`` of two probability arrays.

    >>> blend(np.array([[0.8, 0.2]]), np.array([[0.2, 0.8]]), 0.5).round(2)
    array([[0.5, 0.5]])
    """
    log = (1.0 - weight) * np.log(np.maximum(model_probs, 1e-12)) + weight * np.log(np.maximum(prior_probs, 1e-12))
    log -= log.max(axis=1, keepdims=True)
    mixed = np.exp(log)
    return mixed / mixed.sum(axis=1, keepdims=True)


def choose_weight(
    model_probs: np.ndarray, prior_probs: np.ndarray, truth: Sequence[int | None], *, grid: Sequence[float] = WEIGHT_GRID
) -> tuple[float, dict[float, float]]:
    """The weight with the highest mean log-likelihood of the true answers (questions whose answer
    is outside the head, ``None``, are skipped), and the mean negative log-likelihood at each weight."""
    rows = [i for i, t in enumerate(truth) if t is not None]
    if not rows:
        raise InputError("no held-out question has an answer the model's head knows; cannot choose a weight")
    cols = [truth[i] for i in rows]
    nll = {float(w): float(-np.mean(np.log(blend(model_probs[rows], prior_probs[rows], w)[np.arange(len(rows)), cols])))
           for w in grid}
    return min(nll, key=lambda w: (nll[w], w)), nll


def training_split(folder: str | Path, *, data_dir: str | Path | None = None) -> tuple[list, list, dict[str, Any]]:
    """The questions an ensemble's members were fitted on and those they held out, rebuilt from
    the members' ``training.json`` (data set, split and hold-out settings, which must agree).

    ``data_dir`` replaces the recorded data folder (recorded relative to where training ran).
    Returns ``(kept, held_out, source)`` with ``source`` the agreed data and hold-out settings.
    """
    from lcid.vlm.ensemble import read_record
    from lcid.vlm.model_card import TRAINING_FILE, load_record
    from lcid.vlm.training import VQATrainSettings, training_questions

    folder = Path(folder)
    sources = []
    for name in read_record(folder)["members"]:
        training = load_record(folder / name, TRAINING_FILE)
        try:
            data, settings = training["data"], VQATrainSettings(**training["settings"])
        except (TypeError, KeyError) as exc:
            raise InputError(f"{folder / name} has no training record of a VQA run (training.json)") from exc
        sources.append({"dir": data.get("dir"), "format": data.get("format", "vqa-rad"), "split": "train",
                        **{key: getattr(settings, key) for key in _HOLDOUT_KEYS}})
    if any(s != sources[0] for s in sources[1:]):
        raise InputError(f"the members of {folder} were trained on different data or hold-outs; "
                         "a prompt prior needs one set of training questions")
    source = {**sources[0], **({"dir": str(data_dir)} if data_dir is not None else {})}
    kept, held = training_questions(source["dir"], settings, data_format=source["format"])
    return kept, held, source


_HOLDOUT_KEYS = ("holdout_fraction", "holdout_seed", "holdout_groups", "holdout_phrase_types")


def fit_ensemble_prior(
    folder: str | Path,
    *,
    data_dir: str | Path | None = None,
    weight: float | None = None,
    C: float = DEFAULT_C,
    command: str = "",
) -> PromptPrior:
    """Fit a prompt prior on the questions a VQA ensemble was trained on and save it into its folder.

    Parameters
    ----------
    folder
        Ensemble folder (multiclass answer heads).
    data_dir
        The data set the members were trained on, when not at the recorded path.
    weight
        The prior's weight; ``None`` chooses it by log-likelihood on the questions the members
        held out (:func:`choose_weight`), which needs members trained with a hold-out.
    C
        Inverse regularisation of the logistic regression.
    command
        The command line, recorded in ``prompt_prior.json``.
    """
    from lcid.vlm.ensemble import ENSEMBLE_FILE, VLMEnsemble
    from lcid.vlm.evaluate import predict_samples
    from lcid.vlm.prompt import build_prompt

    if not (Path(folder) / ENSEMBLE_FILE).is_file():
        raise InputError(f"{folder} is not an ensemble folder; a prompt prior is added to one "
                         "(make it with lcid model ensemble)")
    ensemble = VLMEnsemble.from_pretrained(folder)
    if ensemble.cfg.head != "multiclass":
        raise InputError(f"{folder} has a {ensemble.cfg.head} head; a prompt prior is for VQA answer heads")
    if not C > 0:
        raise InputError(f"C must be positive, not {C}")
    if weight is not None:
        checked_weight(weight)
    kept, held, source = training_split(folder, data_dir=data_dir)
    record: dict[str, Any] = {
        "command": command, "C": C, "features": f"TF-IDF of the {MAX_FEATURES} most frequent word 1-2-grams and character 2-4-grams of the prompt",
        "classifier": "multinomial logistic regression (scikit-learn)", "data": source, "questions": len(kept),
    }
    classifier = fit_classifier([build_prompt(s.question) for s in kept], [s.answer for s in kept], C=C)
    if weight is None:
        if not held:
            raise InputError("the members held out no questions to choose the weight on; give --weight "
                             "(docs/vqa.md: chosen on an ensemble of the same recipes trained with a hold-out)")
        labels = ensemble.cfg.head_labels
        ensemble.prior = None
        model_probs = head_matrix(predict_samples(ensemble, held), labels)
        prior_probs = PromptPrior(classifier, 0.0).probabilities([build_prompt(s.question) for s in held], labels)
        column = {label: j for j, label in enumerate(labels)}
        weight, nll = choose_weight(model_probs, prior_probs, [column.get(s.answer) for s in held])
        record["weight_chosen_on"] = {"held_out_questions": len(held), "mean_nll_by_weight": nll}
    prior = PromptPrior(classifier, weight, record)
    prior.save(folder)
    return prior
