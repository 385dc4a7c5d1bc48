"""Image-only probe: can the built-in CNN see each problem in the pictures alone?

A cheap check of an input representation (picture size, extra channels, augmentation) before
a long training of the whole vision-language model: the CNN of :class:`lcid.vlm.vision.SmallCNN`
with a linear multi-label head on its mean-pooled tokens, trained for a few minutes on the
pictures of the fitted scans and scored on the pictures of the scans kept out of fitting
(:func:`lcid.vlm.dwi.training.scan_holdout`); no text, so no findings in the prompt to lean on.

Picture labels are the problems its questions name *without* findings in the prompt naming
them (a problem that only the findings name is not in the picture).

Run on a data set from :func:`lcid.vlm.dwi.build.build`::

    python -m lcid.vlm.dwi.probe runs/dwi-vlm-data-v3 --background-window 0.1 --seed 0
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from sklearn.metrics import f1_score, roc_auc_score
from torch import nn

from lcid.errors import InputError
from lcid.vlm.augment import AugmentSettings, random_augment
from lcid.vlm.dwi.scanner_augment import ScannerAugment, scanner_augment
from lcid.vlm.dwi.visibility import IMAGE_VISIBLE
from lcid.vlm.image import load_image, to_model_input
from lcid.vlm.vision import SmallCNN


@dataclass(frozen=True)
class ProbeSettings:
    """One probe: the representation under test and the (short) training.

    Attributes
    ----------
    image_size
        Side of the model input (pixels).
    fft_channel, background_window
        The CNN's extra input channels (:class:`lcid.vlm.vision.SmallCNN`).
    channels
        CNN stage widths.
    steps, batch_size, lr
        AdamW with a one-cycle schedule.
    augment, scanner_augment
        Apply the DWI recipe's augmentations (zoom/shift/contrast; flips, bias, gamma, noise).
    seed
        Torch seed (weights, batches, augmentations).
    """

    image_size: int = 96
    fft_channel: bool = True
    background_window: float = 0.0
    channels: tuple[int, ...] = (16, 32, 64, 96)
    steps: int = 1500
    batch_size: int = 32
    lr: float = 1e-3
    augment: bool = True
    scanner_augment: bool = True
    seed: int = 0


def picture_labels(rows: Sequence[dict[str, Any]], problems: Sequence[str] = IMAGE_VISIBLE) -> dict[str, set[str]]:
    """Problems each picture shows: named by one of its questions and not only by that question's findings."""
    labels: dict[str, set[str]] = {}
    for row in rows:
        findings = row.get("findings") or {}
        labels.setdefault(row["image"], set()).update(
            p for p in row["labels"] if p in problems and p not in findings
        )
    return labels


def _tensors(
    labels: dict[str, set[str]], problems: Sequence[str], size: int, images: dict[str, np.ndarray] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    keys = sorted(labels)
    pixels = torch.stack([to_model_input(images[k] if images else load_image(k), size=size) for k in keys])
    targets = torch.tensor([[p in labels[k] for p in problems] for k in keys], dtype=torch.float32)
    return pixels, targets


def run_probe(
    fitted: Sequence[dict[str, Any]],
    validation: Sequence[dict[str, Any]],
    settings: ProbeSettings,
    *,
    problems: Sequence[str] = IMAGE_VISIBLE,
    images: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Train the image-only probe on ``fitted`` rows' pictures; score it on ``validation``'s.

    Parameters
    ----------
    fitted, validation
        Manifest rows (:func:`lcid.vlm.dwi.build.read_manifest`); each picture counts once.
    images
        Pictures by ``row["image"]`` key; default: loaded from disk.

    Returns
    -------
    dict
        ``settings``, ``seconds``, per problem ``{"auc", "f1_best", "positives"}`` on the
        validation pictures (``f1_best``: the best F1 over thresholds 0.05-0.95, an upper bound
        for comparing representations, not a calibrated score) and ``macro_f1_best``.
    """
    if settings.steps < 2:
        raise InputError(f"the probe needs at least 2 training steps, not {settings.steps}")
    torch.manual_seed(settings.seed)
    x_fit, y_fit = _tensors(picture_labels(fitted, problems), problems, settings.image_size, images)
    x_val, y_val = _tensors(picture_labels(validation, problems), problems, settings.image_size, images)
    cnn = SmallCNN(channels=settings.channels, image_size=settings.image_size, dropout=0.1,
                   fft_channel=settings.fft_channel, background_window=settings.background_window)
    model = nn.ModuleDict({"cnn": cnn, "head": nn.Linear(settings.channels[-1], len(problems))})

    def logits(pixels: torch.Tensor) -> torch.Tensor:
        return model["head"](model["cnn"](pixels).mean(dim=1))

    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings.lr, total_steps=settings.steps,
                                                   pct_start=max(0.05, 2.0 / settings.steps))
    geometric = AugmentSettings(max_scale=0.1, max_shift=0.06, max_contrast=0.1)
    scanner = ScannerAugment()
    began = time.perf_counter()
    model.train()
    for _ in range(settings.steps):
        index = torch.randint(0, len(x_fit), (settings.batch_size,))
        batch = x_fit[index]
        if settings.augment:
            batch = torch.stack([random_augment(p, geometric) for p in batch])
        if settings.scanner_augment:
            batch = torch.stack([scanner_augment(p, scanner) for p in batch])
        loss = nn.functional.binary_cross_entropy_with_logits(logits(batch), y_fit[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()
    with torch.no_grad():
        probs = torch.sigmoid(torch.cat([logits(x_val[i : i + 64]) for i in range(0, len(x_val), 64)])).numpy()
    truth = y_val.numpy().astype(bool)
    scores: dict[str, Any] = {}
    for j, problem in enumerate(problems):
        positives = int(truth[:, j].sum())
        if positives == 0 or positives == len(truth):
            scores[problem] = {"auc": None, "f1_best": None, "positives": positives}
            continue
        best = max(f1_score(truth[:, j], probs[:, j] >= t, zero_division=0.0) for t in np.arange(0.05, 0.96, 0.05))
        scores[problem] = {"auc": float(roc_auc_score(truth[:, j], probs[:, j])), "f1_best": float(best),
                           "positives": positives}
    known = [s["f1_best"] for s in scores.values() if s["f1_best"] is not None]
    return {"settings": {**asdict(settings), "channels": list(settings.channels)},
            "seconds": time.perf_counter() - began, "problems": scores,
            "macro_f1_best": float(np.mean(known)) if known else float("nan"),
            "pictures": {"fitted": len(x_fit), "validation": len(x_val)}}


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: probe a data set's training split (fitted vs kept-out scans) and print JSON."""
    from lcid.vlm.dwi.build import read_manifest
    from lcid.vlm.dwi.training import scan_holdout

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="data set from lcid data build-vlm")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--no-fft", action="store_true")
    parser.add_argument("--background-window", type=float, default=0.0)
    parser.add_argument("--no-scanner-augment", action="store_true")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--holdout-fraction", type=float, default=0.15)
    parser.add_argument("--holdout-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = read_manifest(args.data, split="train")
    fitted, validation = scan_holdout(rows, fraction=args.holdout_fraction, seed=args.holdout_seed)
    settings = ProbeSettings(image_size=args.image_size, fft_channel=not args.no_fft,
                             background_window=args.background_window,
                             scanner_augment=not args.no_scanner_augment, steps=args.steps, seed=args.seed)
    print(json.dumps(run_probe(fitted, validation, settings), indent=2))


if __name__ == "__main__":
    main()
