"""Per-problem decision thresholds of the DWI model's head, chosen on validation pictures.

A problem is named when the head's probability reaches its threshold. The thresholds are
chosen on questions the model was not fitted on and that do not come from the held-out test
scanners: the scans kept out of fitting by :func:`lcid.vlm.dwi.training.scan_holdout`, or the
training split of another data set built with a different seed. For each problem the
threshold on a fixed grid that gives the best F1 is taken (ties: the one nearest 0.5);
problems with too few true cases keep the default 0.5.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lcid.errors import InputError
from lcid.vlm.dwi.build import read_manifest
from lcid.vlm.dwi.evaluate import predict_rows
from lcid.vlm.ensemble import ENSEMBLE_FILE, VLMEnsemble, read_record
from lcid.vlm.model import DEFAULT_THRESHOLD, FlamingoVLM
from lcid.vlm.model_card import TRAINING_FILE, load_record

#: Candidate thresholds: a coarse grid, so that a small validation set cannot pick a
#: needle-sharp value.
GRID: tuple[float, ...] = tuple(round(t, 2) for t in np.arange(0.05, 0.951, 0.05))
#: Fewest true cases of a problem in the validation rows for its threshold to be chosen.
MIN_POSITIVES = 10


def f1_at(probabilities: np.ndarray, truth: np.ndarray, threshold: float) -> float:
    """F1 of ``probabilities >= threshold`` against boolean ``truth`` (both ``(N,)``); 0 when undefined.

    >>> f1_at(np.array([0.9, 0.4, 0.1]), np.array([True, True, False]), 0.3)
    1.0
    """
    predicted = probabilities >= threshold
    tp = float(np.sum(predicted & truth))
    denominator = float(np.sum(predicted) + np.sum(truth))
    return 2.0 * tp / denominator if denominator else 0.0


def best_threshold(
    probabilities: np.ndarray, truth: np.ndarray, *, grid: Sequence[float] = GRID
) -> tuple[float, float]:
    """The grid threshold with the highest F1 (ties: nearest :data:`DEFAULT_THRESHOLD`), and that F1."""
    scored = [(f1_at(probabilities, truth, t), -abs(t - DEFAULT_THRESHOLD), t) for t in grid]
    f1, _, threshold = max(scored)
    return float(threshold), float(f1)


def choose_thresholds(
    probabilities: np.ndarray,
    truth: np.ndarray,
    labels: Sequence[str],
    *,
    grid: Sequence[float] = GRID,
    min_positives: int = MIN_POSITIVES,
) -> dict[str, dict[str, Any]]:
    """Per label: the chosen threshold, validation F1 there and at 0.5, and true cases.

    Parameters
    ----------
    probabilities
        ``(N, L)`` head probabilities.
    truth
        ``(N, L)`` booleans: the label is present.
    labels
        The ``L`` label names.

    Returns
    -------
    dict
        ``{label: {"threshold", "f1", "f1_default", "positives", "chosen"}}``; ``chosen`` is
        False (threshold 0.5) for labels with fewer than ``min_positives`` true cases.
    """
    probabilities = np.asarray(probabilities, dtype=float)
    truth = np.asarray(truth, dtype=bool)
    if probabilities.shape != truth.shape or probabilities.ndim != 2 or probabilities.shape[1] != len(labels):
        raise InputError(f"probabilities {probabilities.shape} and truth {truth.shape} do not fit {len(labels)} labels")
    out: dict[str, dict[str, Any]] = {}
    for j, label in enumerate(labels):
        positives = int(truth[:, j].sum())
        default_f1 = f1_at(probabilities[:, j], truth[:, j], DEFAULT_THRESHOLD)
        if positives < min_positives:
            out[label] = {"threshold": DEFAULT_THRESHOLD, "f1": default_f1, "f1_default": default_f1,
                          "positives": positives, "chosen": False}
            continue
        threshold, f1 = best_threshold(probabilities[:, j], truth[:, j], grid=grid)
        out[label] = {"threshold": threshold, "f1": f1, "f1_default": default_f1, "positives": positives,
                      "chosen": True}
    return out


def calibrate(
    model: FlamingoVLM | VLMEnsemble, rows: Sequence[dict[str, Any]], *, source: str, min_positives: int = MIN_POSITIVES
) -> dict[str, Any]:
    """Choose the head's thresholds on manifest ``rows`` and set them on ``model`` (for an
    ensemble: thresholds for the members' mean probability).

    ``source`` says which rows these are (saved in the thresholds' record). Refuses rows from
    the ``test`` split. Returns the record: per-problem choices and the number of questions.
    """
    if not rows:
        raise InputError("no validation rows to choose thresholds on")
    if any(r.get("split") == "test" for r in rows):
        raise InputError("thresholds must not be chosen on the test split (the held-out scanners)")
    labels = list(model.cfg.head_labels)
    predictions = predict_rows(model, rows, generate=False)
    probabilities = np.array([[dict(p.head)[label] for label in labels] for p in predictions])
    truth = np.array([[label in r["labels"] for label in labels] for r in rows])
    choices = choose_thresholds(probabilities, truth, labels, min_positives=min_positives)
    record = {"source": source, "questions": len(rows),
              "scans": len({(r.get("source"), r.get("seed")) for r in rows}),
              "rule": f"best validation F1 on a grid of {GRID[0]}-{GRID[-1]} (step 0.05), ties nearest 0.5; "
                      f"0.5 below {min_positives} true cases",
              "problems": choices}
    model.set_thresholds({label: c["threshold"] for label, c in choices.items()}, record)
    return record


def validation_rows(
    data_dir: str | Path, training: Mapping[str, Any] | None, *, split: str | None = None
) -> tuple[list[dict[str, Any]], str]:
    """Rows to choose thresholds on, and a description of them.

    Without ``split``: the training split's rows kept out of fitting, listed in the model's
    ``training.json`` (``data.validation_ids``). With ``split`` (``train`` or ``validation``):
    that whole split of ``data_dir``, which must not be the data the model was fitted on (a
    set built with another seed). The ``test`` split is refused.
    """
    data = dict((training or {}).get("data") or {})
    same_data = bool(data.get("dir")) and Path(str(data["dir"])).resolve() == Path(data_dir).resolve()
    if split is None:
        ids = set(data.get("validation_ids") or [])
        if not ids:
            raise InputError("the model kept no training scans out of fitting (no data.validation_ids in "
                             "training.json): give --split train of a data set built with another seed")
        if not same_data:
            raise InputError(f"the model's validation scans are in {data.get('dir')}, not {data_dir}")
        rows = [r for r in read_manifest(data_dir, split="train") if r["id"] in ids]
        return rows, f"{data_dir}: {len(rows)} training-split questions kept out of fitting"
    if split == "test":
        raise InputError("thresholds must not be chosen on the test split (the held-out scanners)")
    if same_data and split == data.get("split", "train"):
        raise InputError(f"the model was fitted on the {split} split of {data_dir}: choose thresholds on other data")
    rows = read_manifest(data_dir, split=split)
    return rows, f"{data_dir}: {split} split ({len(rows)} questions, not used for fitting)"


def fitted_record(folder: Path) -> dict[str, Any] | None:
    """What a saved model was fitted on, for :func:`validation_rows`: its ``training.json``.

    For an ensemble folder, the first member's record with ``data.validation_ids`` narrowed to
    the scans that no member was fitted on; members fitted on different data sets are refused
    (their kept-out scans would not be comparable). ``None`` when no record exists.
    """
    folder = Path(folder)
    if not (folder / ENSEMBLE_FILE).is_file():
        return load_record(folder, TRAINING_FILE)
    records = [load_record(folder / name, TRAINING_FILE) for name in read_record(folder)["members"]]
    if any(r is None for r in records):
        return None
    dirs = {str((r.get("data") or {}).get("dir")) for r in records}
    if len(dirs) > 1:
        raise InputError(f"the ensemble's members were fitted on different data sets ({', '.join(sorted(dirs))}): "
                         "give --split of a set none of them was fitted on")
    kept_out = set.intersection(*(set((r.get("data") or {}).get("validation_ids") or []) for r in records))
    first = dict(records[0])
    first["data"] = {**(first.get("data") or {}), "validation_ids": sorted(kept_out)}
    return first
