"""Gradient-direction detector: direction subsets, duplicates, bad coverage, shells, real series."""

from __future__ import annotations

import numpy as np
import pytest

from lcid.dwi.context import CheckContext
from lcid.dwi.gradients import b0_mask, shells
from lcid.dwi.problems import few_directions
from lcid.io.gradient_files import read_bvals, read_bvecs
from lcid.io.nifti import find_companion
from lcid.io.scan import DWIScan
from tests.conftest import REAL_SERIES, fibonacci_directions


def _detect(shell_vectors: dict[float, np.ndarray], *, n_b0: int = 1):
    unit = [v / np.linalg.norm(v, axis=1, keepdims=True) for v in shell_vectors.values()]
    bvecs = np.concatenate([np.zeros((n_b0, 3)), *unit])
    bvals = np.concatenate([np.zeros(n_b0)] + [np.full(len(v), b) for b, v in shell_vectors.items()])
    return _detect_table(bvals, bvecs)


def _detect_table(bvals: np.ndarray, bvecs: np.ndarray):
    """Run the detector on a gradient table alone (the image plays no part)."""
    n = len(bvals)
    scan = DWIScan(data=np.zeros((4, 4, 4, n), np.float32), affine=np.eye(4), bvals=bvals, bvecs=bvecs)
    context = CheckContext(
        b0=np.zeros((4, 4, 4)),
        mask=np.ones((4, 4, 4), bool),
        b0_volumes=tuple(int(i) for i in np.flatnonzero(b0_mask(bvals))),
        shells=tuple(shells(bvals, bvecs)),
        pe_axis=1,
        slice_axis=2,
        is_phantom=False,
        mean_diffusivity=float("nan"),
    )
    return few_directions.detect(scan, context)


def _cap(n: int, half_angle_deg: float) -> np.ndarray:
    dirs = fibonacci_directions(20 * n)
    return dirs[dirs[:, 2] > np.cos(np.deg2rad(half_angle_deg))][:n]


@pytest.mark.parametrize(
    ("n_dirs", "severity"), [(64, "none"), (30, "none"), (20, "mild"), (12, "mild"), (6, "moderate"), (4, "severe")]
)
def test_direction_count_grades(n_dirs, severity):
    finding = _detect({1000.0: fibonacci_directions(n_dirs)})
    assert finding.severity == severity
    assert finding.metrics["best_shell_directions"] == n_dirs
    assert finding.metrics["deficit"] == max(30 - n_dirs, 0)
    assert ("dti" in finding.metrics["supports"]) == (n_dirs >= 6)
    assert ("dti_robust" in finding.metrics["supports"]) == (n_dirs >= 30)


def test_antipodal_and_collinear_duplicates_count_once():
    dirs = fibonacci_directions(15)
    rng = np.random.default_rng(0)
    jittered = dirs + rng.normal(0, 0.01, dirs.shape)  # < 2 degrees away
    finding = _detect({1000.0: np.concatenate([dirs, -dirs, jittered])})
    assert finding.metrics["shells"][0]["volumes"] == 45
    assert finding.metrics["best_shell_directions"] == 15
    assert finding.severity == "mild"


def test_directions_in_a_cap_are_poor_coverage_despite_the_count():
    finding = _detect({1000.0: _cap(30, 35.0)})
    assert finding.metrics["best_shell_directions"] >= 28
    assert finding.metrics["poor_coverage_bvals"] == [1000]
    assert finding.metrics["best_shell_effective_directions"] < 10
    assert finding.severity in ("moderate", "severe")
    assert "dti_robust" not in finding.metrics["supports"]


def test_coplanar_directions_allow_no_tensor():
    angles = np.linspace(0, np.pi, 30, endpoint=False)
    plane = np.stack([np.cos(angles), np.sin(angles), np.zeros(30)], axis=1)
    finding = _detect({1000.0: plane})
    assert finding.metrics["best_shell_effective_directions"] == 0.0
    assert finding.severity == "severe"
    assert "dti" not in finding.metrics["supports"]


def test_multishell_supports_dki_and_csd():
    finding = _detect({1000.0: fibonacci_directions(32), 2000.0: fibonacci_directions(64)}, n_b0=3)
    supports = finding.metrics["supports"]
    assert finding.severity == "none"
    assert finding.metrics["b0_count"] == 3
    assert finding.metrics["best_shell_bval"] == 2000
    assert {"dti", "dti_robust", "dki", "csd_lmax6", "csd_lmax8"} <= set(supports)


def test_single_shell_does_not_support_dki_and_low_b_not_lmax8():
    supports = _detect({1000.0: fibonacci_directions(60)}).metrics["supports"]
    assert "dki" not in supports and "csd_lmax8" not in supports and "csd_lmax6" in supports


def test_no_b0_and_no_second_shell_allows_no_tensor_reference():
    finding = _detect({1000.0: fibonacci_directions(30)}, n_b0=0)
    assert finding.metrics["b0_count"] == 0
    assert "dti" not in finding.metrics["supports"]


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(REAL_SERIES))
def test_real_series(name):
    image = REAL_SERIES[name]
    bvals = read_bvals(find_companion(image, ".bval"))
    bvecs = read_bvecs(find_companion(image, ".bvec"))
    finding = _detect_table(bvals, bvecs)
    expected = {"siemens_ap": 20, "siemens_pa": 20, "philips_elition": 16, "philips_achieva": 15, "phantom": 11}[name]
    assert finding.metrics["best_shell_directions"] == expected
    assert finding.metrics["b0_count"] == 1
    # 15-20 directions: enough for DTI, short of 30 (deficit 10-15); the phantom's part 1
    # has 11 at best (deficit 19).
    assert finding.severity == ("moderate" if name == "phantom" else "mild")
    assert "dti" in finding.metrics["supports"]
    assert "dti_robust" not in finding.metrics["supports"]
