"""The slice-statistics classifier of DWI ensembles (lcid.vlm.dwi.statistics_model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lcid.errors import InputError
from lcid.vlm.dwi.slice_statistics import STATISTICS
from lcid.vlm.dwi.statistics_model import (
    MODEL_FILE,
    RECORD_FILE,
    SliceStatisticsModel,
    fit_classifier,
    noisy_or,
)
from lcid.vlm.predict import Prediction
from tests.test_slice_statistics import _head

PROBLEMS = ("ghosting", "missing_slices")


def _pictures(n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Heads; every other one with a 6 % half-FOV ghost, every third one with a dark line."""
    pictures, targets = [], []
    for i in range(n):
        picture = _head(seed=seed * 1000 + i, noise=0.01)
        ghost, dark = i % 2 == 0, i % 3 == 0
        if ghost:
            picture = picture + 0.06 * np.roll(picture, 32, axis=0)
        if dark:
            picture[24 + i % 10] *= 0.05
        pictures.append(picture)
        targets.append([ghost, dark])
    return pictures, np.array(targets)


@pytest.fixture(scope="module")
def fitted():
    from lcid.vlm.dwi.slice_statistics import slice_statistics

    pictures, targets = _pictures(40, 0)
    classifier = fit_classifier(np.stack([slice_statistics(p) for p in pictures]), targets)
    return SliceStatisticsModel(classifier, PROBLEMS, {"command": "unit test"})


def test_noisy_or_never_lowers_either_probability():
    assert noisy_or(0.0, 0.3) == pytest.approx(0.3) and noisy_or(1.0, 0.0) == 1.0
    assert noisy_or(0.2, 0.5) == pytest.approx(0.6)


def test_classifier_separates_new_pictures_of_its_problems(fitted):
    pictures, targets = _pictures(12, 1)
    probabilities = fitted.probabilities(pictures)
    assert probabilities.shape == (12, 2)
    assert ((probabilities >= 0.5) == targets).mean() > 0.9


def test_apply_combines_only_its_problems_by_noisy_or(fitted):
    pictures, _ = _pictures(2, 2)
    predictions = [Prediction(generated="text", head=(("ghosting", 0.2), ("noise", 0.4), ("missing_slices", 0.9)))] * 2
    ours = fitted.probabilities(pictures)
    for prediction, row in zip(fitted.apply(predictions, pictures), ours, strict=True):
        head = dict(prediction.head)
        assert prediction.generated == "text" and head["noise"] == 0.4
        assert head["ghosting"] == pytest.approx(noisy_or(0.2, row[0]))
        assert head["missing_slices"] == pytest.approx(noisy_or(0.9, row[1])) and head["missing_slices"] >= 0.9
        assert list(head.values()) == sorted(head.values(), reverse=True)


def test_save_load_round_trip_and_refusals(fitted, tmp_path):
    fitted.save(tmp_path)
    loaded = SliceStatisticsModel.load(tmp_path)
    pictures, _ = _pictures(4, 3)
    assert loaded.problems == PROBLEMS and loaded.record["command"] == "unit test"
    assert np.array_equal(loaded.probabilities(pictures), fitted.probabilities(pictures))
    assert SliceStatisticsModel.load(tmp_path / "none") is None
    record = json.loads((tmp_path / RECORD_FILE).read_text())
    (tmp_path / RECORD_FILE).write_text(json.dumps({**record, "statistics": record["statistics"][:-1]}))
    with pytest.raises(InputError, match="other slice statistics"):
        SliceStatisticsModel.load(tmp_path)
    (tmp_path / RECORD_FILE).write_text(json.dumps(record))
    (tmp_path / MODEL_FILE).write_bytes(b"not a zip")
    with pytest.raises(InputError, match="cannot read"):
        SliceStatisticsModel.load(tmp_path)


def test_fit_refuses_one_sided_or_misshapen_training_data():
    statistics = np.zeros((6, len(STATISTICS)))
    with pytest.raises(InputError, match="one kind only"):
        fit_classifier(statistics, np.array([[1, 0]] * 3 + [[1, 1]] * 3))
    with pytest.raises(InputError, match="do not fit"):
        fit_classifier(statistics[:, :5], np.array([[1], [0]] * 3))


def test_noise_floor_copies_are_seeded_and_raise_the_background():
    from lcid.vlm.dwi.scanner_augment import ScannerAugment
    from lcid.vlm.dwi.slice_statistics import slice_statistics
    from lcid.vlm.dwi.statistics_model import floored_statistics

    pictures = [_head(seed=i, noise=0.0) for i in range(6)]
    augment = ScannerAugment(noise_floor=0.025)
    first, again = floored_statistics(pictures, augment), floored_statistics(pictures, augment)
    assert first.shape == (6, len(STATISTICS)) and np.array_equal(first, again)
    plain = np.stack([slice_statistics(p) for p in pictures])
    spread = STATISTICS.index("background_spread")
    assert (first[:, spread] >= plain[:, spread]).all() and (first[:, spread] > plain[:, spread]).any()
