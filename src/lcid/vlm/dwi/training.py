"""Train the ``dwi`` model on a data set from :func:`lcid.vlm.dwi.build.build`, with the shared loop.

The same recipe file format, optimizer and schedule as the VQA training
(:class:`lcid.vlm.training.VQATrainSettings`); only the examples differ: rendered slices with
optional acquisition text, a reference answer, and a multi-label head over the problem ids.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from lcid.dwi.vocabulary import PROBLEM_IDS
from lcid.errors import InputError
from lcid.vlm.augment import AugmentSettings
from lcid.vlm.config import VLMConfig
from lcid.vlm.data import VLMDataset, VLMExample
from lcid.vlm.dwi.build import read_manifest
from lcid.vlm.dwi.calibrate import calibrate
from lcid.vlm.dwi.card import write_dwi_card
from lcid.vlm.dwi.scanner_augment import ScannerAugment, scanner_augment
from lcid.vlm.dwi.text import QUESTIONS
from lcid.vlm.image import load_image
from lcid.vlm.model import FlamingoVLM, write_thresholds
from lcid.vlm.prompt import build_prompt
from lcid.vlm.tokenizer import VLMTokenizer
from lcid.vlm.training import VQATrainSettings, fit_and_save


def scan_holdout(
    rows: Sequence[dict[str, Any]], *, fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split manifest rows into (fitted, validation) by simulated scan.

    ``fraction`` of the scans (a scan is a ``(source, seed)`` pair: all its pictures and
    questions stay together, so validation pictures are never near-copies of training ones)
    is drawn with ``seed``. The validation rows choose the decision thresholds
    (:mod:`lcid.vlm.dwi.calibrate`); the test split's scanners are never used for that.
    """
    if not 0.0 <= fraction < 1.0:
        raise InputError(f"holdout_fraction must be in [0, 1), not {fraction}")
    scans = sorted({(str(r["source"]), int(r["seed"])) for r in rows})
    n_out = round(fraction * len(scans))
    if n_out == 0:
        return list(rows), []
    order = np.random.default_rng(seed).permutation(len(scans))
    held = {scans[i] for i in order[:n_out]}
    fitted = [r for r in rows if (str(r["source"]), int(r["seed"])) not in held]
    return fitted, [r for r in rows if (str(r["source"]), int(r["seed"])) in held]


def source_holdout(
    rows: Sequence[dict[str, Any]], sources: Sequence[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split manifest rows into (kept, left out) by source; a source absent from ``rows`` is an
    :class:`InputError` (a misspelt name would silently keep the scanner in)."""
    present = {str(r["source"]) for r in rows}
    unknown = sorted(set(sources) - present)
    if unknown:
        raise InputError(f"holdout_sources {', '.join(unknown)} not in the training split "
                         f"(sources: {', '.join(sorted(present))})")
    out = set(sources)
    return [r for r in rows if r["source"] not in out], [r for r in rows if r["source"] in out]


def manifest_examples(rows: Sequence[dict[str, Any]]) -> tuple[list[VLMExample], dict[str, np.ndarray]]:
    """Model examples of manifest rows, and each picture loaded once (key: its path)."""
    images: dict[str, np.ndarray] = {}
    examples = []
    for row in rows:
        key = row["image"]
        if key not in images:
            images[key] = load_image(key)
        examples.append(VLMExample(image_key=key, prompt=build_prompt(row["question"], acq=row.get("acq"),
                                                                      findings=row.get("findings")),
                                   answer=row["answer"], labels=tuple(row["labels"])))
    return examples, images


class ScannerAugmented(Dataset):
    """A :class:`VLMDataset` whose pictures get :func:`scanner_augment` changes on every draw."""

    def __init__(self, base: VLMDataset, settings: ScannerAugment) -> None:
        self.base = base
        self.settings = settings

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = dict(self.base[i])
        item["pixels"] = scanner_augment(item["pixels"], self.settings)
        return item

    def collate(self, batch: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The base data set's batching."""
        return self.base.collate(batch)


def train_dwi(
    data_dir: str | Path, *, settings: VQATrainSettings, out_dir: str | Path, command: str = ""
) -> dict[str, Any]:
    """Train on the ``train`` split of ``data_dir`` and save to ``out_dir/model``.

    With ``settings.holdout_fraction`` above 0 that fraction of the training split's scans is
    kept out of fitting (:func:`scan_holdout`); their row ids are recorded in ``training.json``
    (``data.validation_ids``) for choosing decision thresholds. Checkpoints and ``metrics.jsonl`` go to ``out_dir`` (a rerun resumes). Returns the
    ``training.json`` record (command, recipe, seed, data set build settings, time, versions).
    """
    out_dir = Path(out_dir)
    if settings.init_from:
        raise InputError("init_from is a key of VQA recipes (lcid train vqa); DWI models train from scratch")
    rows = read_manifest(data_dir, split="train")
    if not rows:
        raise InputError(f"{data_dir} has no training rows")
    rows, left_out = source_holdout(rows, settings.holdout_sources)
    if not rows:
        raise InputError(f"holding out {', '.join(settings.holdout_sources)} leaves no training rows in {data_dir}")
    rows, validation = scan_holdout(rows, fraction=settings.holdout_fraction, seed=settings.holdout_seed)
    validation = left_out + validation
    examples, images = manifest_examples(rows)
    cfg = VLMConfig.from_dict({**settings.model, "head": "multilabel", "head_labels": list(PROBLEM_IDS)})
    torch.manual_seed(int(settings.train.get("seed", 0)))
    texts = [e.prompt + " " + e.answer for e in examples] + list(QUESTIONS)
    tokenizer = VLMTokenizer.train(texts, vocab_size=settings.vocab_size)
    model = FlamingoVLM.build(cfg, tokenizer)
    cfg = model.cfg
    dataset: VLMDataset | ScannerAugmented = VLMDataset(
        examples, images, tokenizer, image_size=cfg.image_size, max_length=cfg.max_length,
        head_labels=cfg.head_labels, head="multilabel",
        augment=AugmentSettings.from_dict(settings.augment) if settings.augment else True,
    )
    if settings.scanner_augment:
        dataset = ScannerAugmented(dataset, ScannerAugment.from_dict(settings.scanner_augment))
    build_file = Path(data_dir) / "build.json"
    data_record = {"dir": str(data_dir), "split": "train", "questions": len(rows), "images": len(images),
                   "build": json.loads(build_file.read_text()) if build_file.is_file() else None}
    if settings.holdout_sources:
        data_record["holdout_sources"] = sorted(settings.holdout_sources)
    if validation:
        data_record["validation_scans"] = len({(r["source"], r["seed"]) for r in validation})
        data_record["validation_ids"] = [r["id"] for r in validation]
    record = fit_and_save(model, tokenizer, dataset, settings, out_dir, command=command, data_record=data_record,
                          write_card=write_dwi_card)
    if validation:
        trained = FlamingoVLM.from_pretrained(out_dir / "model")
        choice = calibrate(trained, validation, source=f"{data_dir}: {len(validation)} training-split questions "
                                                       "kept out of fitting")
        write_thresholds(out_dir / "model", trained.thresholds, choice)
        record["thresholds"] = trained.thresholds
    return record
