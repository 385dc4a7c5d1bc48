"""The image-only probe of the DWI pictures (lcid.vlm.dwi.probe)."""

from __future__ import annotations

import numpy as np
import pytest

from lcid.vlm.dwi.probe import ProbeSettings, picture_labels, run_probe


def test_picture_labels_leave_out_problems_only_the_findings_name():
    rows = [
        {"image": "a.png", "labels": ["ghosting", "few_directions"], "findings": None},
        {"image": "a.png", "labels": ["ghosting", "motion"], "findings": {"motion": "mild"}},
        {"image": "b.png", "labels": ["spikes"], "findings": {"spikes": "severe"}},
    ]
    assert picture_labels(rows) == {"a.png": {"ghosting"}, "b.png": set()}


def _pictures(n: int, seed: int) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Heads of random size; every other one with a faint replica (4 % of the head) above it."""
    rng = np.random.default_rng(seed)
    rows, images = [], {}
    for i in range(n):
        picture = np.zeros((24, 24), dtype=np.float32)
        half = int(rng.integers(4, 7))
        picture[12 - half : 12 + half, 12 - half : 12 + half] = 1.0
        ghost = i % 2 == 0
        if ghost:
            picture[0:3, 12 - half : 12 + half] = 0.04
        key = f"{seed}-{i}.png"
        images[key] = picture + rng.normal(0, 0.003, picture.shape).astype(np.float32)
        rows.append({"image": key, "labels": ["ghosting"] if ghost else [], "findings": None})
    return rows, images


def test_probe_learns_a_faint_replica_and_scores_the_kept_out_pictures():
    fitted, images = _pictures(48, 0)
    validation, more = _pictures(24, 1)
    settings = ProbeSettings(image_size=24, channels=(8, 16), steps=120, batch_size=16, lr=3e-3,
                             background_window=0.1, augment=False, scanner_augment=False)
    result = run_probe(fitted, validation, settings, problems=("ghosting", "spikes"), images={**images, **more})
    assert result["pictures"] == {"fitted": 48, "validation": 24}
    assert result["problems"]["spikes"] == {"auc": None, "f1_best": None, "positives": 0}
    assert result["problems"]["ghosting"]["positives"] == 12
    assert result["problems"]["ghosting"]["auc"] > 0.9
    assert result["macro_f1_best"] == pytest.approx(result["problems"]["ghosting"]["f1_best"])
