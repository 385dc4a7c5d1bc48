"""Slice dropout detector: synthetic dropouts with known (volume, slice) pairs, and real series."""

from __future__ import annotations

import numpy as np
import pytest

from lcid.dwi.context import build_context
from lcid.dwi.problems import missing_slices
from lcid.io.scan import DWIScan
from tests.conftest import REAL_SERIES, make_scan
from tests.conftest import real_scan as _real


def _with_dropout(scan: DWIScan, pairs: list[tuple[int, int]], factor: float = 0.0, **changes) -> DWIScan:
    data = scan.data.copy()
    for volume, z in pairs:
        data[:, :, z, volume] *= factor
    return scan.replace(data=data, **changes)


def _detect(scan: DWIScan):
    return missing_slices.detect(scan, build_context(scan))


def test_clean_scan_has_no_missing_slices(synthetic_scan):
    finding = _detect(synthetic_scan)
    assert finding.severity == "none"
    assert finding.where["pairs"] == []
    assert finding.confidence < 0.5
    assert finding.evidence["z_scores"].shape == (synthetic_scan.n_volumes, synthetic_scan.shape[2])


def test_zeroed_slices_are_found_exactly(synthetic_scan):
    pairs = [(5, 8), (12, 10), (20, 11)]
    finding = _detect(_with_dropout(synthetic_scan, pairs))
    assert sorted(map(tuple, finding.where["pairs"])) == sorted(pairs)
    assert finding.where["volumes"] == [5, 12, 20]
    assert finding.severity == "severe"
    assert finding.metrics["max_signal_loss"] > 0.95
    assert finding.confidence > 0.9


def test_partial_dropout_is_graded_by_lost_signal(synthetic_scan):
    finding = _detect(_with_dropout(synthetic_scan, [(9, 9)], factor=0.6))
    assert finding.where["pairs"] == [[9, 9]]
    assert finding.severity == "mild"
    assert finding.metrics["max_signal_loss"] == pytest.approx(0.4, abs=0.05)


def test_small_signal_drop_is_not_reported(synthetic_scan):
    finding = _detect(_with_dropout(synthetic_scan, [(9, 9)], factor=0.85))
    assert finding.severity == "none"
    assert finding.where["pairs"] == []


def test_multiband_group_dropout():
    scan = make_scan(seed=3)
    scan = scan.replace(sidecar={**scan.sidecar, "MultibandAccelerationFactor": 2})
    finding = _detect(_with_dropout(scan, [(7, 4), (7, 14)], factor=0.1))
    assert sorted(map(tuple, finding.where["pairs"])) == [(7, 4), (7, 14)]
    assert finding.metrics["multiband_factor"] == 2


def test_high_b_noisy_scan_no_false_alarm_and_dropout_found():
    scan = make_scan(bval=2500.0, noise=0.03, seed=5)
    assert _detect(scan).severity == "none"
    finding = _detect(_with_dropout(scan, [(15, 10)], factor=0.0))
    assert finding.where["pairs"] == [[15, 10]]
    assert finding.severity == "severe"


def test_small_shell_dropout_uses_neighbouring_slices():
    scan = make_scan(n_b0=1, n_dirs=2, seed=2)  # a shell of two volumes: no across-volume median
    finding = _detect(_with_dropout(scan, [(1, 9)], factor=0.2))
    assert finding.where["pairs"] == [[1, 9]]
    assert finding.severity in ("moderate", "severe")


def test_b0_volumes_are_not_scored():
    scan = make_scan(n_b0=1, seed=2)  # no diffusion encoding: no motion-induced dropout
    finding = _detect(_with_dropout(scan, [(0, 9)], factor=0.2))
    assert finding.where["pairs"] == []
    assert np.isnan(finding.evidence["z_scores"][0]).all()


def test_smooth_change_across_slices_is_not_a_dropout(synthetic_scan):
    # A volume that moved through-plane changes a run of slices smoothly; a dropout is one slice.
    data = synthetic_scan.data.copy()
    data[:, :, :, 12] *= np.linspace(1.0, 0.3, data.shape[2])[None, None, :].astype(np.float32)
    finding = _detect(synthetic_scan.replace(data=data))
    assert finding.where["pairs"] == []
    assert finding.metrics["n_smooth_changes"] > 0
    dropped = _detect(_with_dropout(synthetic_scan.replace(data=data), [(12, 8)], factor=0.3))
    assert dropped.where["pairs"] == [[12, 8]]


def test_edge_slices_are_ignored(synthetic_scan):
    finding = _detect(_with_dropout(synthetic_scan, [(5, 0), (6, 19)]))
    assert finding.where["pairs"] == []
    assert np.isnan(finding.evidence["z_scores"][:, 0]).all()


def test_multiband_groups_from_timing_and_factor():
    assert missing_slices.multiband_groups(6, {"MultibandAccelerationFactor": 3}) == [[0, 2, 4], [1, 3, 5]]
    assert missing_slices.multiband_groups(5, {"MultibandAccelerationFactor": 2}) is None
    timing = [0.0, 1.0, 0.5, 0.0, 1.0, 0.5]
    assert missing_slices.multiband_groups(6, {"SliceTiming": timing}) == [[0, 3], [2, 5], [1, 4]]
    assert missing_slices.multiband_groups(6, {}) is None


def test_group_evidence_flags_moderate_partners():
    z = np.zeros((3, 4))
    z[1, [0, 2]] = [-3.0, -3.5]  # individually below the bar, jointly -4.6
    flagged = missing_slices.flag_outliers(z, [[0, 2], [1, 3]])
    assert flagged[1, 0] and flagged[1, 2]
    assert flagged.sum() == 2
    assert not missing_slices.flag_outliers(z, None).any()




@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(REAL_SERIES))
def test_real_series_are_clean(name):
    scan, context = _real(name)
    finding = missing_slices.detect(scan, context)
    assert finding.severity in ("none", "mild")
    assert finding.metrics["n_scored_slices"] > 0


@pytest.mark.integration
def test_real_high_b_multiband_dropout_is_found():
    scan, context = _real("siemens_ap")  # b=2500, MB3: groups of slices 13 apart
    data = scan.data.copy()
    data[:, :, [6, 19, 32], 9] *= 0.15
    finding = missing_slices.detect(scan.replace(data=data), context)
    assert sorted(map(tuple, finding.where["pairs"])) == [(9, 6), (9, 19), (9, 32)]
    assert finding.severity == "severe"


def test_direction_model_finds_dropout_in_an_anisotropic_slice():
    """A slice through a bundle along x at b = 2000 is 5x darker for gradients along x: a
    30 % dropout hides in that spread for the across-volume median, not for the model."""
    rng = np.random.default_rng(0)
    g = rng.normal(size=(30, 3))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    tensor = np.diag([-1.6, -0.1, -0.1])  # log signal = gᵀ A g (b·D of the slice)
    logs = np.tile(-0.5 * np.ones((30, 1)), (1, 10)) + rng.normal(0, 0.01, (30, 10))
    logs[:, 5] = np.einsum("vi,ij,vj->v", g, tensor, g) + rng.normal(0, 0.01, 30)
    logs[7, 5] += np.log(0.7)
    means = np.exp(logs)
    scored = np.ones(10, bool)
    log_ratio, z = missing_slices.dropout_scores(means, scored, [list(range(30))], bvecs=g)
    assert z[7, 5] < -missing_slices.OUTLIER_Z
    assert 1 - np.exp(log_ratio[7, 5]) == pytest.approx(0.3, abs=0.05)
    assert (np.delete(z.ravel(), 7 * 10 + 5) > -missing_slices.OUTLIER_Z).all()
    _, z_median = missing_slices.dropout_scores(means, scored, [list(range(30))])
    assert z_median[7, 5] > z[7, 5]
