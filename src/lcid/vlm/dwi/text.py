"""Words around a DWI slice: acquisition text from a gradient table, questions, reference answers.

Answers are written from the recommendations knowledge base (``lcid.advice``): the problem's
title (always verbatim, so the problems named can be read back from any answer), and the first
sentence of one of its remedies, in varied wording. (The explanation sentences are available
through :func:`problem_sentences`; they are left out of the answers the model learns, to keep
generation short.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lcid.advice.knowledge import load_knowledge
from lcid.advice.template import render
from lcid.dwi.gradients import b0_mask, shells

QUESTIONS: tuple[str, ...] = (
    "What is wrong with this image?",
    "What is wrong with this slice?",
    "Do you see any artifact in this image?",
    "Is this scan OK for tractography?",
    "Is there a problem with this diffusion image?",
    "Can I use this data?",
    "What should I fix before processing?",
    "Describe the quality of this slice.",
)

_OPENINGS = (
    "This slice shows {items}.",
    "I see {items}.",
    "The image has {items}.",
    "I find {items}.",
)
_CLEAN = (
    "I see no problem in this slice.",
    "This slice looks clean.",
    "Nothing wrong is visible in this image.",
)
_CAVEATS = (
    "One slice cannot show movement between volumes or distortion from eddy currents: run lcid check on the whole series.",
    "Check the full 4D series with lcid check for problems a single slice cannot show.",
)
_POLAR_NO = ("No.", "Not as it is.")
_POLAR_YES = ("Yes, as far as this slice shows.", "It looks usable.")
#: Polar questions whose short answer is yes when nothing is found.
_POLAR = frozenset({"Is this scan OK for tractography?", "Can I use this data?"})


def acquisition_facts(bvals: np.ndarray, bvecs: np.ndarray, *, voxel_mm: Sequence[float] | None = None) -> dict[str, Any]:
    """What a gradient table says, as numbers.

    Returns
    -------
    dict
        ``n_volumes``, ``n_b0``, ``dw_shells`` (b-values, s/mm²), ``best_directions`` (unique
        directions of the best diffusion shell), ``bad_vectors`` (diffusion volumes whose
        b-vector is zero or more than 10 % away from unit length) and ``voxel_mm``.
    """
    bvals = np.asarray(bvals, dtype=float)
    raw = np.asarray(bvecs, dtype=float)
    dw = ~b0_mask(bvals)
    norms = np.linalg.norm(raw, axis=1)
    bad = int(np.sum(dw & (np.abs(norms - 1.0) > 0.1)))
    groups = shells(bvals, raw)
    dw_groups = [s for s in groups if s.bval > 0 and s.unique_directions > 0]
    return {
        "n_volumes": int(bvals.size),
        "n_b0": int(np.sum(~dw)),
        "dw_shells": [int(round(s.bval, -1)) for s in dw_groups],
        "best_directions": max((s.unique_directions for s in dw_groups), default=0),
        "bad_vectors": bad,
        "voxel_mm": [round(float(v), 2) for v in voxel_mm] if voxel_mm is not None else None,
    }


#: Direction counts users often state (best shell); random counts are drawn besides these.
_COMMON_DIRECTIONS: tuple[int, ...] = (6, 12, 15, 16, 20, 21, 25, 30, 32, 45, 48, 60, 64, 90, 100, 128)
#: b-values (s/mm²) of diffusion shells users often state.
_COMMON_BVALS: tuple[int, ...] = (300, 500, 700, 800, 1000, 1200, 1500, 2000, 2500, 3000, 4000, 5000)


def random_acquisition(rng: np.random.Generator, facts: Mapping[str, Any]) -> dict[str, Any]:
    """A stated acquisition with random direction count and b-values, for training texts.

    The real series of the data set all have 15-20 directions; texts drawn only from them
    teach the model the numbers it saw, not the rule (fewer than 30 directions is too few).
    Half of the counts come from :data:`_COMMON_DIRECTIONS`, half are log-uniform in 6-150 (as
    many below 30 as above); one to
    three shells from :data:`_COMMON_BVALS`; 1-10 b0 volumes. Bad b-vectors and the voxel size
    are kept from ``facts`` (what the picture's own table says).

    Returns
    -------
    dict
        Facts in the form of :func:`acquisition_facts`.
    """
    if rng.random() < 0.5:
        directions = int(_COMMON_DIRECTIONS[int(rng.integers(len(_COMMON_DIRECTIONS)))])
    else:
        directions = round(float(np.exp(rng.uniform(np.log(6), np.log(150)))))
    n_shells = int(rng.integers(1, 4))
    shells_ = sorted(int(b) for b in rng.choice(_COMMON_BVALS, size=n_shells, replace=False))
    n_b0 = int(rng.integers(1, 11))
    return {**facts, "n_volumes": n_b0 + directions * n_shells, "n_b0": n_b0, "dw_shells": shells_,
            "best_directions": directions}


def few_directions_severity(facts: Mapping[str, Any]) -> str:
    """Severity of too few directions stated by ``facts`` (``none`` at 30 or more), graded on
    the deficit ``30 - best_directions`` as the simulator and ``lcid check`` grade it.

    >>> few_directions_severity({"best_directions": 15}), few_directions_severity({"best_directions": 64})
    ('mild', 'none')
    """
    from lcid.dwi.severity import grade
    from lcid.simulate.artifacts.few_directions import ENOUGH_DIRECTIONS

    directions = int(facts.get("best_directions", 0))
    if directions <= 0 or directions >= ENOUGH_DIRECTIONS:
        return "none"
    return grade(float(ENOUGH_DIRECTIONS - directions), "few_directions")


def acquisition_text(facts: Mapping[str, Any], *, style: int = 0) -> str:
    """A user's description of the acquisition, in one of three styles.

    >>> acquisition_text({"n_volumes": 65, "n_b0": 1, "dw_shells": [1000, 2000], "best_directions": 64,
    ...                   "bad_vectors": 0, "voxel_mm": None})
    '64 directions, b = 0 to 2000'
    """
    shells_ = facts["dw_shells"]
    top = max(shells_, default=0)
    directions = facts["best_directions"]
    if style % 3 == 0:
        text = f"{directions} directions, b = 0 to {top}"
    elif style % 3 == 1:
        text = f"{facts['n_volumes']} volumes: {facts['n_b0']} b0 and {directions} directions at b={'/'.join(map(str, shells_)) or 0}"
    else:
        text = f"I have a bvec file with {directions} directions and b-values from 0 to {top}"
    if facts.get("bad_vectors"):
        text += f"; {facts['bad_vectors']} b-vectors are zero or not unit length"
    if facts.get("voxel_mm") and style % 3 == 1:
        text += "; voxels " + "x".join(f"{v:g}" for v in facts["voxel_mm"]) + " mm"
    return text


def _first_sentence(text: str) -> str:
    """Text up to the first full stop that ends a sentence (not the one of "e.g." or "i.e.").

    >>> _first_sentence("Use a model (e.g. DTI). Then stop.")
    'Use a model (e.g. DTI).'
    """
    text = " ".join(text.split())
    for match in re.finditer(r"[.!?](\s|$)", text):
        head = text[: match.start() + 1]
        if not re.search(r"\b(e\.g|i\.e|etc|cf)\.$", head):
            return head
    return text


def problem_sentences(problem: str, severity: str, *, fields: Mapping[str, Any], variant: int) -> tuple[str, str]:
    """(explanation, advice) sentences for one problem from the knowledge base."""
    advice = load_knowledge()[problem]
    explanation = _first_sentence(render(advice.explanation.get(severity, advice.explanation["moderate"]), fields))
    remedies = advice.remedies_for(severity if severity != "none" else "mild", {"brain": True})
    # a remedy worded as an alternative to the one before it ("Or ...") cannot stand alone
    remedies = tuple(r for r in remedies if not r.action.lstrip().lower().startswith("or "))
    action = _first_sentence(render(remedies[variant % len(remedies)].action, fields)) if remedies else ""
    return explanation, action


def title(problem: str) -> str:
    """The knowledge base's display title of a problem, lower-cased (as it appears in answers)."""
    return load_knowledge()[problem].title.lower()


def reference_answer(
    question: str,
    labels: Sequence[str],
    *,
    severities: Mapping[str, str],
    fields: Mapping[str, Any],
    variant: int,
) -> str:
    """The answer the model learns for ``labels`` (problem ids shown), in wording ``variant``.

    The problems are named with their severity (a problem without one in ``severities`` is named
    alone), followed by one remedy for the first one.
    """
    polar = question in _POLAR
    if not labels:
        head = (_POLAR_YES[variant % 2] + " ") if polar else ""
        return head + _CLEAN[variant % len(_CLEAN)] + " " + _CAVEATS[variant % len(_CAVEATS)]
    items = " and ".join(f"{title(p)} ({severities[p]})" if p in severities else title(p) for p in labels)
    parts = [_POLAR_NO[variant % 2]] if polar else []
    parts.append(_OPENINGS[variant % len(_OPENINGS)].format(items=items))
    # What to do about the first problem; the explanation stays out of the generated answer to
    # keep it short (every generated token costs a full forward pass on the CPU).
    _explanation, action = problem_sentences(labels[0], severities.get(labels[0], "moderate"), fields=fields,
                                             variant=variant)
    if action:
        parts.append(action)
    return " ".join(parts)


def problems_named(answer: str) -> tuple[str, ...]:
    """Problem ids whose knowledge-base title appears in an answer (case-insensitive)."""
    text = answer.lower()
    return tuple(p for p in load_knowledge() if title(p) in text)


def stated_severities(answer: str) -> dict[str, str]:
    """The severity an answer gives each problem it names ("title (mild)").

    >>> stated_severities("I see gibbs ringing (moderate) and low resolution.")
    {'gibbs_ringing': 'moderate'}
    """
    text = answer.lower()
    out = {}
    for problem in load_knowledge():
        match = re.search(re.escape(title(problem)) + r" \((mild|moderate|severe)\)", text)
        if match:
            out[problem] = match.group(1)
    return out


def grounded_answer(question: str, generated: str, found: Sequence[str]) -> str:
    """The answer shown for a multi-label (DWI) head: the generated text when it names exactly the
    problems the head found (``found``, at the model's thresholds), else an answer written from the
    knowledge base for those problems, in the training answers' first wording; severities the
    generated text gave are kept, the others left unsaid (the head has none).

    The head is the better-measured of the two (docs/vlm.md): the answer must not call a slice
    clean while the problems listed under it say otherwise.
    """
    if set(problems_named(generated)) == set(found):
        return generated
    return reference_answer(question, list(found), severities=stated_severities(generated), fields={}, variant=0)
