"""Several trained models answering together: the mean of their head probabilities.

Models trained from different seeds or recipes make partly independent mistakes; averaging
their probabilities is the standard remedy (a deep ensemble, Lakshminarayanan et al. 2017).
On VQA-RAD the mean of three members was chosen on the group-aware hold-out of the training
split (docs/vqa.md); for DWI slices, the mean of four (docs/vlm.md).

An ensemble is a folder with ``ensemble.json`` and one saved model per member
(``member-0/``, ``member-1/`` ...), each a complete :class:`FlamingoVLM` folder with its own
config, weights, tokenizer and ``training.json``. Members may differ in image size, input
channels or architecture but must share the head: the same kind (multiclass answers or
multi-label problems) over the same labels. A multi-label ensemble decides with its own
per-label thresholds (``thresholds.json`` in the ensemble folder, chosen on validation data
for the averaged probabilities by ``lcid model calibrate``); the members' own thresholds are
not used. A multiclass (VQA) ensemble may carry a text-only answer model over the prompt
(``prompt_prior.skops``, added by ``lcid model prior``; :mod:`lcid.vlm.prompt_prior`) whose
probabilities are multiplied into the members' mean; a multi-label (DWI) ensemble may carry a
picture-only classifier over slice statistics (``slice_statistics.skops``, added by
``lcid model statistics``; :mod:`lcid.vlm.dwi.statistics_model`) combined with the mean by
noisy-OR. The first member writes the generated text.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lcid.errors import InputError
from lcid.vlm.config import VLMConfig
from lcid.vlm.image import to_model_input
from lcid.vlm.model import DEFAULT_THRESHOLD, FlamingoVLM, checked_thresholds, read_thresholds
from lcid.vlm.predict import Prediction, predict
from lcid.vlm.prompt_prior import PromptPrior
from lcid.vlm.tokenizer import VLMTokenizer

if TYPE_CHECKING:
    from lcid.vlm.dwi.statistics_model import SliceStatisticsModel

ENSEMBLE_FILE = "ensemble.json"
FORMAT_VERSION = 1
#: How member answers are combined (recorded in ``ensemble.json``).
COMBINE = "mean head probability"


class VLMEnsemble:
    """Members answering together; used wherever a single :class:`FlamingoVLM` is.

    ``cfg`` and ``tokenizer`` are the first member's: the head type and labels, which
    decide how the final answer is read (:func:`lcid.vlm.predict.final_answer`), are the
    same for every member.
    """

    def __init__(self, members: Sequence[FlamingoVLM]) -> None:
        if len(members) < 2:
            raise InputError(f"an ensemble needs at least two members, got {len(members)}")
        first = members[0].cfg
        for i, member in enumerate(members):
            if member.cfg.head not in ("multiclass", "multilabel"):
                raise InputError(f"ensemble member {i} has no classification head; ensembles combine "
                                 "multiclass (answer) or multi-label (problem) heads")
            if member.cfg.head != first.head:
                raise InputError(f"ensemble member {i} has a {member.cfg.head} head, member 0 a {first.head} one")
            if tuple(member.cfg.head_labels) != tuple(first.head_labels):
                raise InputError(f"ensemble member {i} answers over other labels than member 0 "
                                 "(train members on the same data and answer vocabulary)")
        self.members = tuple(m.eval() for m in members)
        #: The ensemble's own per-label decision thresholds (multi-label heads); see the module docstring.
        self.thresholds: dict[str, float] = {}
        self.thresholds_record: dict[str, Any] = {}
        #: Text-only answer model multiplied into the mean (multiclass heads); ``None``: the mean alone.
        self.prior: PromptPrior | None = None
        #: Picture-only classifier over slice statistics combined with the mean (multi-label heads).
        self.statistics: SliceStatisticsModel | None = None

    @property
    def cfg(self) -> VLMConfig:
        return self.members[0].cfg

    @property
    def tokenizer(self) -> VLMTokenizer | None:
        return self.members[0].tokenizer

    def eval(self) -> VLMEnsemble:
        return self

    def threshold(self, label: str) -> float:
        """Mean head probability at or above which ``label`` counts as present."""
        return float(self.thresholds.get(label, DEFAULT_THRESHOLD))

    def set_thresholds(self, thresholds: Mapping[str, float], record: Mapping[str, Any] | None = None) -> None:
        """Use these per-label thresholds for the averaged probabilities (saved into the ensemble
        folder with :func:`lcid.vlm.model.write_thresholds`, read back by :meth:`from_pretrained`)."""
        self.thresholds = checked_thresholds(thresholds, self.cfg.head_labels)
        self.thresholds_record = dict(record or {})

    @torch.no_grad()
    def predict_images(
        self, images: Sequence[np.ndarray], prompts: Sequence[str], *, max_new_tokens: int = 12,
        use_cache: bool = True,
    ) -> list[Prediction]:
        """Each member sees the images at its own input size; head probabilities are averaged
        (then multiplied by the prompt prior's, or combined with the slice-statistics classifier's,
        when the ensemble has one) and the first member's generated text is kept."""
        runs = [
            predict(m, _pixels(images, m.cfg.image_size), prompts, max_new_tokens=max_new_tokens if i == 0 else 0,
                    use_cache=use_cache)
            for i, m in enumerate(self.members)
        ]
        combined = [combine(list(per_image)) for per_image in zip(*runs, strict=True)]
        if self.prior is not None:
            combined = self.prior.apply(combined, prompts, self.cfg.head_labels)
        if self.statistics is not None:
            combined = self.statistics.apply(combined, images)
        return combined

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, directory: str | Path) -> VLMEnsemble:
        """Load an ensemble folder written by :func:`build_ensemble`."""
        folder = Path(directory)
        record = read_record(folder)
        members = []
        for name in record["members"]:
            member_dir = folder / name
            if not (member_dir / "config.json").is_file():
                raise InputError(f"ensemble member {member_dir} is missing (no config.json)")
            members.append(FlamingoVLM.from_pretrained(str(member_dir)))
        ensemble = cls(members)
        saved = read_thresholds(folder)
        if saved is not None:
            ensemble.set_thresholds(*saved)
        ensemble.prior = PromptPrior.load(folder)
        if ensemble.prior is not None and ensemble.cfg.head != "multiclass":
            raise InputError(f"{folder} has a prompt prior but a {ensemble.cfg.head} head (priors are for VQA answers)")
        from lcid.vlm.dwi.statistics_model import SliceStatisticsModel

        ensemble.statistics = SliceStatisticsModel.load(folder)
        if ensemble.statistics is not None:
            unknown = set(ensemble.statistics.problems) - set(ensemble.cfg.head_labels)
            if ensemble.cfg.head != "multilabel" or unknown:
                raise InputError(f"{folder} has a slice-statistics classifier that does not fit its "
                                 f"{ensemble.cfg.head} head (problems {sorted(unknown) or 'ok'})")
        return ensemble


def combine(predictions: Sequence[Prediction]) -> Prediction:
    """One prediction from the members': mean head probability per label, most probable first;
    the first member's generated text."""
    totals: dict[str, float] = {}
    for prediction in predictions:
        for label, p in prediction.head:
            totals[label] = totals.get(label, 0.0) + p
    mean = sorted(((label, total / len(predictions)) for label, total in totals.items()), key=lambda lp: -lp[1])
    return Prediction(generated=predictions[0].generated, head=tuple(mean))


def predict_images(
    model: FlamingoVLM | VLMEnsemble, images: Sequence[np.ndarray], prompts: Sequence[str], *, max_new_tokens: int = 12,
    use_cache: bool = True,
) -> list[Prediction]:
    """Predictions of a model or an ensemble for 2D images (any size; scaled to each model's input)."""
    if isinstance(model, VLMEnsemble):
        return model.predict_images(images, prompts, max_new_tokens=max_new_tokens, use_cache=use_cache)
    return predict(model, _pixels(images, model.cfg.image_size), prompts, max_new_tokens=max_new_tokens,
                   use_cache=use_cache)


def read_record(folder: Path) -> dict[str, Any]:
    """``ensemble.json`` of a folder, checked."""
    path = folder / ENSEMBLE_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read {path} ({exc.__class__.__name__})") from exc
    members = record.get("members") if isinstance(record, dict) else None
    if not isinstance(members, list) or not all(isinstance(m, str) and "/" not in m and m for m in members):
        raise InputError(f"{path} has no list of member folders")
    if record.get("format") != FORMAT_VERSION:
        raise InputError(f"{path} has format {record.get('format')}; this lcid reads format {FORMAT_VERSION}")
    return record


def build_ensemble(sources: Sequence[str | Path], out: str | Path, *, command: str = "") -> Path:
    """Copy saved model folders into an ensemble folder ``out``.

    Each source is loaded first (so a broken or mismatched member fails before anything is
    written) and copied whole: weights, config, tokenizer, ``training.json`` and card.
    ``command`` (the command line that built it) is recorded in ``ensemble.json``.
    """
    from lcid.io.atomic import atomic_dir

    folders = [Path(s) for s in sources]
    for folder in folders:
        if not (folder / "config.json").is_file():
            raise InputError(f"{folder} is not a saved model folder (no config.json)")
    VLMEnsemble([FlamingoVLM.from_pretrained(str(f)) for f in folders])  # checks heads and labels agree
    with atomic_dir(out) as tmp:
        names = []
        for i, folder in enumerate(folders):
            name = f"member-{i}"
            shutil.copytree(folder, tmp / name, ignore=shutil.ignore_patterns(".lcid-tmp-*"))
            names.append(name)
        record = {"format": FORMAT_VERSION, "combine": COMBINE, "members": names, "sources": [str(f) for f in folders],
                  "command": command}
        (tmp / ENSEMBLE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return Path(out)


def _pixels(images: Sequence[np.ndarray], size: int) -> torch.Tensor:
    return torch.stack([to_model_input(image, size=size) for image in images])
