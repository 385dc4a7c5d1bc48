"""Image-level auxiliary targets collected from a VQA training split.

A VQA data set says more about each image than any one question does: its body region
(VQA-RAD's ``image_organ``), and across its questions the imaging modality and plane.
Collected per image, these become extra classification targets on the pooled image
features (see :class:`lcid.vlm.config.VLMConfig` ``aux_labels``), which teach a small
vision encoder trained from scratch what the images show.

Only the training split is read. An attribute is known for an image when the answers agree
(the most frequent value wins, ties leave it unknown), and unknown otherwise.

By default only MODALITY/PLANE-typed questions vote on modality and plane. With
``presupposition=True`` (recipe key ``aux_presupposition``), a question of any type also votes
on the modality when its question or answer uses a word that only makes sense for one modality
(``PRESUPPOSED_MODALITY``: "does this CXR show ...", "... on this T2 weighted image?",
"... in this radiograph?"). A presupposition survives negating the question's predicate ("Is there
a fracture in this radiograph?" -> "no" is still a radiograph), so "no" answers vote too, except
when the question is about what the image itself is ("Is this a T1 weighted image?" -> "no":
perhaps a CT), and choice questions (" or ") never vote. The plane has no such rule: outside
PLANE questions its words are anatomy ("lateral ventricle", "transverse colon") or rare.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

from lcid.errors import InputError
from lcid.io.vqa import VQASample

#: Keywords (whole words of a normalised answer or question) naming each modality.
MODALITY_WORDS: dict[str, tuple[str, ...]] = {
    "ct": ("ct", "cat"),
    "mri": ("mri", "mr", "flair", "t1", "t2", "dwi", "adc", "diffusion", "t1-weighted", "t2-weighted", "mri-flair",
            "mri/flair", "t2-mri"),
    "x-ray": ("x-ray", "xray", "radiograph", "cxr", "film", "xr", "plain"),
    "ultrasound": ("ultrasound", "us", "sonography"),
}
#: Keywords naming each imaging plane (or projection, for radiographs).
PLANE_WORDS: dict[str, tuple[str, ...]] = {
    "axial": ("axial", "transverse"),
    "coronal": ("coronal",),
    "sagittal": ("sagittal",),
    "pa": ("pa", "posteroanterior"),
    "ap": ("ap", "anteroposterior"),
    "lateral": ("lateral",),
}
#: Words that presuppose the image's modality in any question or answer about it (opt-in rule).
PRESUPPOSED_MODALITY: dict[str, tuple[str, ...]] = {
    # MR contrasts and sequences: T1/T2 weighting, FLAIR, diffusion-weighted imaging and its ADC
    # map, gadolinium (the MR contrast agent) and "sequence" (an MR acquisition) exist only in MRI.
    # (T1/T2 also name thoracic vertebrae; no VQA-RAD training text uses them so.)
    "mri": ("flair", "t1", "t2", "weighted", "t1-weighted", "t2-weighted", "dwi", "adc", "gadolinium",
            "sequence"),
    # Projection radiography: a radiograph / CXR (chest X-ray) / film is an X-ray image, and the
    # spelled-out posteroanterior and anteroposterior projections are radiograph projections.
    "x-ray": ("radiograph", "cxr", "film", "posteroanterior", "anteroposterior"),
}
#: Words that presuppose the modality only in PLANE questions: there PA/AP name a radiograph's
#: projection; elsewhere "PA" may be the pulmonary artery and "AP" an AP diameter on a CT.
PRESUPPOSED_IN_PLANE_QUESTIONS: dict[str, tuple[str, ...]] = {"x-ray": ("pa", "ap")}
ATTRIBUTES = ("organ", "modality", "plane")
_WORD = re.compile(r"[a-z0-9/+-]+")
_QUESTION_TYPES = {"modality": "MODALITY", "plane": "PLANE"}
#: Questions about what the image itself is: a "no" answer negates the presupposing word too.
_ABOUT_THE_IMAGE = re.compile(r"^\s*(is|was|are|were)\s+(this|it|these|the\s+(image|film|picture|scan))\b")


def named_values(text: str, vocabulary: Mapping[str, Sequence[str]]) -> set[str]:
    """Values of ``vocabulary`` whose keywords occur as whole words in ``text``.

    >>> sorted(named_values("Is this an MRI or a CT scan?", MODALITY_WORDS))
    ['ct', 'mri']
    """
    words = set(_WORD.findall(text.lower().replace("x ray", "x-ray")))
    return {value for value, keys in vocabulary.items() if words & set(keys)}


def _vote(sample: VQASample, attribute: str) -> str | None:
    """The value of ``attribute`` that this question and answer state about the image, if any."""
    if attribute == "organ":
        return sample.organ.lower() or None
    if _QUESTION_TYPES[attribute] not in sample.question_type.upper():
        return None
    vocabulary = MODALITY_WORDS if attribute == "modality" else PLANE_WORDS
    in_answer = named_values(sample.answer, vocabulary)
    if len(in_answer) == 1:
        return next(iter(in_answer))
    if sample.answer == "yes":  # "Is this a CT?" -> yes; "Is this an MRI or a CT?" names two: skipped
        in_question = named_values(sample.question, vocabulary)
        if len(in_question) == 1:
            return next(iter(in_question))
    return None


def presupposed_modality(sample: VQASample) -> str | None:
    """The modality that this question or answer takes for granted, if exactly one.

    >>> from pathlib import Path
    >>> q = VQASample(qid="1", image_path=Path("a.jpg"), question="Does this CXR show a pneumothorax?",
    ...               answer="no", answer_type="closed", question_type="PRES", organ="CHEST")
    >>> presupposed_modality(q)
    'x-ray'
    """
    question, answer = sample.question.lower(), sample.answer.lower()
    if " or " in f" {question} " or " or " in f" {answer} ":
        return None  # "Is this a T1 or a T2 image?": a choice, not a presupposition
    if answer == "no" and _ABOUT_THE_IMAGE.match(question):
        return None  # "Is this a T1 weighted image?" -> "no": not necessarily an MRI
    text = f"{question} {answer}"
    values = named_values(text, PRESUPPOSED_MODALITY)
    if "PLANE" in sample.question_type.upper():
        values |= named_values(text, PRESUPPOSED_IN_PLANE_QUESTIONS)
    if len(values) != 1 or not named_values(text, MODALITY_WORDS) <= values:
        return None  # none, or conflicting ("this CT radiograph")
    return next(iter(values))


def image_attributes(
    samples: Sequence[VQASample], attributes: Sequence[str] = ATTRIBUTES, *, presupposition: bool = False
) -> dict[str, dict[str, str]]:
    """Per image (key: the image path as text), the agreed value of each attribute found.

    Parameters
    ----------
    samples
        Training questions (several per image).
    attributes
        Any of ``organ`` (the data set's body region), ``modality`` (ct, mri, x-ray,
        ultrasound) and ``plane`` (axial, coronal, sagittal, pa, ap, lateral).
    presupposition
        Also let questions of any type vote on the modality through words that presuppose it
        (:func:`presupposed_modality`); off: only MODALITY-typed questions vote.

    Returns
    -------
    dict
        ``{image: {attribute: value}}``; attributes without an agreed value are left out.
    """
    unknown = sorted(set(attributes) - set(ATTRIBUTES))
    if unknown:
        raise InputError(f"unknown auxiliary targets {', '.join(unknown)}; choose from {', '.join(ATTRIBUTES)}")
    votes: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for s in samples:
        for attribute in attributes:
            value = _vote(s, attribute)
            if value is None and presupposition and attribute == "modality":
                value = presupposed_modality(s)
            if value is not None:
                votes[str(s.image_path)][attribute][value] += 1
    out: dict[str, dict[str, str]] = {}
    for image, by_attribute in votes.items():
        agreed = {}
        for attribute, counts in by_attribute.items():
            ranked = counts.most_common(2)
            if len(ranked) == 1 or ranked[0][1] > ranked[1][1]:
                agreed[attribute] = ranked[0][0]
        if agreed:
            out[image] = agreed
    return out


def aux_target_table(
    attributes_by_image: Mapping[str, Mapping[str, str]], attributes: Sequence[str]
) -> tuple[dict[str, tuple[str, ...]], dict[str, list[int]]]:
    """Class names per attribute and, per image, one class index per attribute (-100: unknown).

    Returns
    -------
    labels, targets
        ``{attribute: sorted class names}`` (for ``VLMConfig.aux_labels``) and
        ``{image: [index per attribute]}`` (for ``VLMDataset(image_targets=...)``), in the
        order of ``attributes``.
    """
    labels = {
        a: tuple(sorted({values[a] for values in attributes_by_image.values() if a in values})) for a in attributes
    }
    empty = [a for a, names in labels.items() if len(names) < 2]
    if empty:
        raise InputError(f"auxiliary target {', '.join(empty)} has fewer than 2 classes in the training data")
    index = {a: {name: i for i, name in enumerate(names)} for a, names in labels.items()}
    targets = {
        image: [index[a][values[a]] if a in values else -100 for a in attributes]
        for image, values in attributes_by_image.items()
    }
    return labels, targets


__all__ = ["ATTRIBUTES", "MODALITY_WORDS", "PLANE_WORDS", "PRESUPPOSED_IN_PLANE_QUESTIONS", "PRESUPPOSED_MODALITY",
           "aux_target_table", "image_attributes", "named_values", "presupposed_modality"]
