"""Eddy-current detector: gradient-dependent PE affine injected into synthetic scans."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lcid.dwi.context import build_context
from lcid.dwi.problems import eddy_current, motion
from lcid.dwi.severity import grade
from lcid.io.scan import DWIScan
from tests.test_motion import textured_scan

#: Injected PE (axis 1) displacement per mm along axes (0, 1, 2), per unit b·g (ms/µm²):
#: shear along x follows g_x, scaling follows g_y, shear along z follows g_z, plus a
#: shift (mm) that follows g_y.
SHEAR_X, SCALE_Y, SHEAR_Z, SHIFT_MM = 0.05, 0.15, 0.05, 1.5


def injected(bg: np.ndarray) -> tuple[np.ndarray, float]:
    """PE displacement per voxel along each axis, and PE shift in voxels, for gradient ``b·g``."""
    return np.array([SHEAR_X * bg[0], SCALE_Y * bg[1], SHEAR_Z * bg[2]]), SHIFT_MM * bg[1] / 3.0


def true_max_displacement(scan: DWIScan) -> float:
    """Largest injected |PE displacement| (voxels) over the object of any volume."""
    mask = build_context(scan).mask
    centred = np.argwhere(mask) - (np.array(mask.shape) - 1) / 2
    worst = 0.0
    for v in np.flatnonzero(scan.bvals > 50):
        s, shift = injected(scan.bvecs[v] * scan.bvals[v] / 1000.0)
        worst = max(worst, float(np.abs(centred @ s + shift).max()))
    return worst


def distort(volume: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Apply the eddy affine along axis 1: content at x moves to y = x + e_1 (s·(x - c)) + shift."""
    s, shift = injected(bg)
    forward = np.eye(3)
    forward[1] += s
    inverse = np.linalg.inv(forward)
    centre = (np.array(volume.shape) - 1) / 2
    offset = centre - inverse @ (centre + np.array([0.0, shift, 0.0]))
    return ndimage.affine_transform(volume, inverse, offset=offset, order=3, mode="constant")


@pytest.fixture(scope="module")
def distorted() -> DWIScan:
    scan = textured_scan(seed=1)
    data = scan.data.copy()
    for v in range(scan.n_volumes):
        if scan.bvals[v] > 50:
            data[..., v] = distort(data[..., v], scan.bvecs[v] * scan.bvals[v] / 1000.0)
    return scan.replace(data=data)


def test_clean_scan_has_no_eddy_currents() -> None:
    scan = textured_scan(seed=2)
    finding = eddy_current.detect(scan, build_context(scan))
    assert finding.severity == "none", finding.metrics
    assert finding.metrics["max_displacement_vox"] < 0.5


def test_gradient_dependent_affine_is_detected(distorted: DWIScan) -> None:
    finding = eddy_current.detect(distorted, build_context(distorted))
    truth = true_max_displacement(textured_scan(seed=1))
    assert finding.metrics["max_displacement_vox"] == pytest.approx(truth, rel=0.2)
    assert finding.severity == grade(truth, "eddy_current") == "moderate", (truth, finding.metrics)
    assert finding.metrics["fit_r2"] > 0.9
    coefficients = np.asarray(finding.metrics["coefficients_vox"])
    # The scaling column (axis 1) is driven by b·g_y, the shears by b·g_x and b·g_z.
    assert abs(coefficients[1, 2]) > 5 * max(abs(coefficients[0, 2]), abs(coefficients[2, 2]))
    assert abs(coefficients[0, 1]) > 5 * max(abs(coefficients[1, 1]), abs(coefficients[2, 1]))
    assert abs(coefficients[2, 3]) > 5 * max(abs(coefficients[0, 3]), abs(coefficients[1, 3]))
    assert coefficients[1, 0] == pytest.approx(SHIFT_MM / 3.0, abs=0.15)
    assert set(finding.where["volumes"]).isdisjoint({0, 1})  # b0s are never distorted


def test_eddy_shift_is_not_reported_as_motion(distorted: DWIScan) -> None:
    finding = motion.detect(distorted, build_context(distorted))
    # The gradient-dependent PE shift (up to 1.5 mm) is taken out of the translations; a
    # moderate PE affine leaks a few tenths of a degree into rotations (at most mild).
    assert finding.metrics["max_translation_mm"] < 0.5, finding.metrics
    assert finding.severity in ("none", "mild"), finding.metrics


def test_max_displacement_over_points() -> None:
    points = np.array([[0.0, 10.0, 0.0], [0.0, -20.0, 0.0]])
    params = np.array([[0.5, 0.0, 1.0, 0.0]])
    # displacement = 0.5 + 1.0 * y / lever_y with lever_y = 10 -> 1.5 and -1.5
    np.testing.assert_allclose(eddy_current.max_displacement(params, points, np.array([1.0, 10.0, 1.0])), [1.5])


def test_phantom_is_not_applicable() -> None:
    scan = textured_scan(seed=3)
    finding = eddy_current.detect(scan, build_context(scan, anatomy="phantom"))
    assert not finding.applicable and not finding.detected

