"""Hold training questions out for choosing recipes, and measure how much they leak.

VQA-RAD's test questions are about images that also occur in training, and many of them
have a training question about the same image with the same answer (often a paraphrase of
a sibling question). Holding out single questions at random keeps the paraphrase of almost
every held-out question in training, so the held-out score flatters memorisation. Holding
out whole groups (same image, same normalised answer, same question type: the signature of
a free-form question and its paraphrase) and drawing only from the phrase types the test
split contains mirrors how the test split was built; :func:`answer_overlap` measures the
result.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch

from lcid.errors import InputError
from lcid.io.vqa import VQASample

GroupKey = tuple[str, str, str]


def group_key(sample: VQASample) -> GroupKey:
    """The hold-out group of a question: its image, normalised answer and question type."""
    return str(sample.image_path), sample.answer, sample.question_type


def holdout_split(
    samples: Sequence[VQASample],
    *,
    fraction: float,
    seed: int,
    groups: bool = False,
    phrase_types: Sequence[str] = (),
) -> tuple[list[VQASample], list[VQASample]]:
    """Split training questions into (kept, held out), about ``fraction`` of them held out.

    Parameters
    ----------
    samples
        The training questions.
    fraction
        Share of all questions to hold out, in ``[0, 1)``; 0 holds out nothing.
    seed
        Seed of the random draw (the same seed gives the same split).
    groups
        ``False``: single questions are drawn at random. ``True``: whole groups
        (:func:`group_key`) are drawn at random until at least ``fraction`` of the
        questions are out, so no held-out question has a same-group sibling in training.
    phrase_types
        Only questions of these phrase types (VQA-RAD: ``freeform``, ``para``, ``frame``)
        may be held out; empty: any. With ``groups``, a group holds only eligible questions.

    Returns
    -------
    tuple of list
        Kept and held-out questions, each in the input order. Images are never held out
        as such, as in the VQA-RAD test split (whose images also occur in training).
    """
    if not 0.0 <= fraction < 1.0:
        raise InputError(f"holdout_fraction must be in [0, 1), not {fraction}")
    n_out = round(fraction * len(samples))
    if n_out == 0:
        return list(samples), []
    wanted = {p.lower() for p in phrase_types}
    eligible = [i for i, s in enumerate(samples) if not wanted or s.phrase_type in wanted]
    if len(eligible) < n_out:
        raise InputError(f"only {len(eligible)} questions have phrase type {sorted(wanted)}; "
                         f"cannot hold out {n_out}")
    generator = torch.Generator().manual_seed(seed)
    if groups:
        members: dict[GroupKey, list[int]] = defaultdict(list)
        for i in eligible:
            members[group_key(samples[i])].append(i)
        keys = list(members)
        out: set[int] = set()
        for k in torch.randperm(len(keys), generator=generator).tolist():
            if len(out) >= n_out:
                break
            out.update(members[keys[k]])
    else:
        order = torch.randperm(len(eligible), generator=generator).tolist()
        out = {eligible[k] for k in order[:n_out]}
    return [s for i, s in enumerate(samples) if i not in out], [s for i, s in enumerate(samples) if i in out]


def answer_overlap(held_out: Sequence[VQASample], train: Sequence[VQASample]) -> dict[str, float]:
    """Share of questions with a training question about the same image with the same answer.

    Returns
    -------
    dict
        ``overall``, ``closed`` and ``open`` shares (fractions; NaN where there are no
        questions of that type) and the question counts ``n``, ``n_closed``, ``n_open``.
    """
    seen = {(str(s.image_path), s.answer) for s in train}
    result: dict[str, float] = {}
    for name, subset in (("overall", list(held_out)), ("closed", [s for s in held_out if s.answer_type == "closed"]),
                         ("open", [s for s in held_out if s.answer_type == "open"])):
        hits = sum((str(s.image_path), s.answer) in seen for s in subset)
        result[name] = hits / len(subset) if subset else float("nan")
        result["n" if name == "overall" else f"n_{name}"] = len(subset)
    return result


__all__ = ["answer_overlap", "group_key", "holdout_split"]
