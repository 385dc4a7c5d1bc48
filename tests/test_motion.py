"""Motion detector: known rigid motion and interleaved slice shifts on synthetic scans."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation

from lcid.dwi.context import build_context
from lcid.dwi.problems import motion
from lcid.io.scan import DWIScan
from tests.conftest import make_scan

VOX = 3.0


def textured_scan(seed: int = 0) -> DWIScan:
    """A synthetic head with anatomy-like texture (rotations need structure to be seen)."""
    scan = make_scan(shape=(40, 40, 28), voxel_mm=(VOX,) * 3, n_dirs=20, seed=seed)
    rng = np.random.default_rng(100 + seed)
    texture = ndimage.gaussian_filter(rng.normal(size=scan.data.shape[:3]), 1.5)
    texture = 1.0 + 0.35 * texture / texture.std()
    return scan.replace(data=(scan.data * texture[..., None]).astype(np.float32))


def move(volume: np.ndarray, *, shift_mm=(0.0, 0.0, 0.0), rotvec_deg=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Rigidly move a volume's content about the array centre (content at x goes to R x + t)."""
    rot = Rotation.from_rotvec(np.radians(rotvec_deg)).as_matrix()
    centre = (np.array(volume.shape) - 1) / 2
    inverse = rot.T
    offset = centre - inverse @ (centre + np.asarray(shift_mm) / VOX)
    return ndimage.affine_transform(volume, inverse, offset=offset, order=3, mode="constant")


@pytest.fixture(scope="module")
def clean() -> DWIScan:
    return textured_scan()


@pytest.fixture(scope="module")
def moved(clean: DWIScan) -> tuple[DWIScan, dict[int, tuple]]:
    injected = {8: ((1.5, 0.0, 1.0), (0, 0, 0)), 15: ((0.0, -2.0, 0.0), (0, 0, 0)), 19: ((0, 0, 0), (0.0, 0.0, 3.0))}
    data = clean.data.copy()
    for v, (shift, rot) in injected.items():
        data[..., v] = move(data[..., v], shift_mm=shift, rotvec_deg=rot)
    return clean.replace(data=data), injected


def test_clean_scan_has_no_motion(clean: DWIScan) -> None:
    finding = motion.detect(clean, build_context(clean))
    assert finding.severity == "none", finding.metrics
    assert finding.metrics["max_fd_mm"] < 0.5
    assert finding.where["volumes"] == []


def test_injected_motion_is_recovered(moved) -> None:
    scan, injected = moved
    finding = motion.detect(scan, build_context(scan))
    assert finding.detected
    assert finding.where["volumes"] == sorted(injected)
    translations = finding.evidence["translations_mm"]
    rotations = finding.evidence["rotations_deg"]
    others = [v for v in range(2, scan.n_volumes) if v not in injected]
    reference_t = np.median(translations[others], axis=0)
    reference_r = np.median(rotations[others], axis=0)
    for v, (shift, rot) in injected.items():
        np.testing.assert_allclose(translations[v] - reference_t, shift, atol=0.5)
        np.testing.assert_allclose(rotations[v] - reference_r, rot, atol=0.5)
    # FD of a 2 mm jump (Power et al.: sum of absolute parameter changes) grades moderate.
    assert 1.8 < finding.metrics["max_fd_mm"] < 4.5


def test_interleaved_slice_shift_is_found(clean: DWIScan) -> None:
    data = clean.data.copy()
    data[:, :, 1::2, 11] = ndimage.shift(data[:, :, 1::2, 11], (2.0, 0.0, 0.0), order=1)
    scan = clean.replace(data=data)
    shifts = motion.interleave_shifts(scan.data)
    assert shifts[11] == pytest.approx(2.0, abs=0.3)
    assert np.delete(shifts, 11).max() < 0.5
    finding = motion.detect(scan, build_context(scan))
    assert 11 in finding.where["volumes"]
    assert finding.severity in ("moderate", "severe")


def test_framewise_displacement_counts_rotation_on_50mm_sphere() -> None:
    rotvecs = np.array([[0, 0, 0], [0, 0, 0.01], [0, 0, 0.01]])
    fd = motion.framewise_displacement(np.zeros((3, 3)), rotvecs, np.ones(3, bool))
    np.testing.assert_allclose(fd, [0.0, 0.5, 0.0], atol=1e-9)


def test_estimator_noise_is_not_motion() -> None:
    """Noisy positions (0.3 mm per axis) give frame-to-frame jumps over 1 mm, but no
    volume stands out of its group's noise: nothing is graded; one 2 mm jump is."""
    rng = np.random.default_rng(0)
    n = 40
    t = rng.normal(0, 0.3, (n, 3))
    group = np.r_[np.zeros(4, int), np.ones(n - 4, int)]
    valid = np.ones(n, bool)
    raw = motion.framewise_displacement(t, np.zeros((n, 3)), valid)
    assert raw.max() > 1.0
    moved = motion.significant_displacements(t, np.zeros((n, 3)), group, valid)
    assert not moved.any()
    t[20] += [2.0, 0.0, 0.0]
    moved = motion.significant_displacements(t, np.zeros((n, 3)), group, valid)
    assert np.flatnonzero(moved).tolist() == [20]
    rest_t, rest_r = motion.resting_positions(t, np.zeros((n, 3)), group, valid, moved=moved)
    fd = motion.framewise_displacement(rest_t, rest_r, valid)
    assert np.flatnonzero(fd).tolist() == [20, 21] and 1.5 < fd.max() < 3.5


def test_noisy_phase_encoding_axis_is_judged_on_its_own_spread() -> None:
    """Residual eddy shifts make the PE translation noisy (0.4 mm) while the other axes are
    tight (0.05 mm): a PE shift within that noise is not motion, a 2 mm shift across PE is."""
    rng = np.random.default_rng(1)
    n = 30
    t = rng.normal(0, 0.05, (n, 3))
    t[:, 1] = rng.normal(0, 0.4, n)
    r = rng.normal(0, 0.001, (n, 3))
    group, valid = np.zeros(n, int), np.ones(n, bool)
    t[5, 1] = 1.1  # 2.75 sd along PE
    assert not motion.significant_displacements(t, r, group, valid).any()
    t[9, 0] += 2.0
    assert np.flatnonzero(motion.significant_displacements(t, r, group, valid)).tolist() == [9]


def test_phantom_is_not_applicable(clean: DWIScan) -> None:
    finding = motion.detect(clean, build_context(clean, anatomy="phantom"))
    assert not finding.applicable and not finding.detected

