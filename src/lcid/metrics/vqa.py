"""VQA scores: exact-match accuracy overall, by answer type, question type and organ."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> list[bool]:
    """Whether each (already normalised) prediction equals its reference."""
    if len(predictions) != len(references):
        raise ValueError("predictions and references differ in length")
    return [p == r for p, r in zip(predictions, references, strict=True)]


def accuracy(correct: Sequence[bool]) -> float:
    """Fraction correct; NaN for no items."""
    return sum(correct) / len(correct) if correct else float("nan")


def grouped_accuracy(correct: Sequence[bool], groups: Sequence[str]) -> dict[str, dict[str, float]]:
    """``{group: {"accuracy": fraction, "n": count}}`` for each distinct group label."""
    buckets: dict[str, list[bool]] = defaultdict(list)
    for ok, group in zip(correct, groups, strict=True):
        buckets[group].append(ok)
    return {g: {"accuracy": accuracy(v), "n": len(v)} for g, v in sorted(buckets.items())}


def majority_answers(train_answers: Sequence[str], train_types: Sequence[str]) -> dict[str, str]:
    """The most frequent training answer per answer type (``closed``/``open``); ties alphabetical."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for answer, kind in zip(train_answers, train_types, strict=True):
        counts[kind][answer] += 1
    return {k: min(v.items(), key=lambda kv: (-kv[1], kv[0]))[0] for k, v in counts.items()}
