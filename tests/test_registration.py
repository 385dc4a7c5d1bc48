"""Shared alignment: contrast groups, recovery of a known transform, the eddy regression."""

from __future__ import annotations

import numpy as np
import pytest

from lcid.dwi.check import detector
from lcid.dwi.context import build_context
from lcid.dwi.gradients import shells
from lcid.dwi.registration import SeriesAlignment, align_series, fit_eddy, object_contrast, volume_groups
from tests.conftest import REAL_SERIES
from tests.conftest import real_scan as _real
from tests.test_motion import move, textured_scan


class _Context:
    """The two fields volume_groups reads."""

    def __init__(self, bvals: np.ndarray) -> None:
        bvecs = np.tile([1.0, 0.0, 0.0], (len(bvals), 1)) * (bvals[:, None] > 50)
        self.shells = tuple(shells(bvals, bvecs))
        self.b0_volumes = tuple(int(i) for i in np.flatnonzero(bvals <= 50))


def test_small_shells_join_the_nearest_large_group() -> None:
    bvals = np.array([0, 100, 700, 700, 700, 1400, 1400, 2000, 2000, 2000, 2000])
    groups = volume_groups(_Context(bvals))
    assert groups == [(0, 1), (2, 3, 4), (5, 6, 7, 8, 9, 10)]


def test_every_volume_in_exactly_one_group() -> None:
    bvals = np.array([1000, 0, 1000, 1000, 0, 2000])
    groups = volume_groups(_Context(bvals))
    flat = sorted(v for g in groups for v in g)
    assert flat == list(range(len(bvals)))


def test_alignment_is_cached_per_scan() -> None:
    scan = textured_scan(seed=4)
    context = build_context(scan)
    first = align_series(scan, context)
    assert align_series(scan, context) is first
    other = scan.replace(data=scan.data.copy())
    assert align_series(other, build_context(other)) is not first


def test_known_translation_recovered_in_b0_group() -> None:
    scan = textured_scan(seed=5)
    data = scan.data.copy()
    data[..., 1] = move(data[..., 1], shift_mm=(0.0, 1.2, -0.9))
    moved = scan.replace(data=data)
    alignment = align_series(moved, build_context(moved))
    # The b0 reference is the mean of both b0s, so each sits half the shift from it.
    relative = alignment.translations_mm[1] - alignment.translations_mm[0]
    np.testing.assert_allclose(relative, [0.0, 1.2, -0.9], atol=0.3)
    assert np.all(alignment.pe_affine[:2] == 0)  # b0 volumes are rigid only


def test_noise_only_volumes_are_not_registered() -> None:
    scan = textured_scan(seed=6)
    data = scan.data.copy()
    rng = np.random.default_rng(0)
    data[..., 5] = np.abs(rng.normal(0, 10, data.shape[:3]))
    contrast = object_contrast(data, build_context(scan).mask)
    assert contrast[5] < 0.3 < contrast[:5].min()


def _alignment(n: int, pe_shift_mm: np.ndarray, pe_affine: np.ndarray) -> SeriesAlignment:
    translations = np.zeros((n, 3))
    translations[:, 1] = pe_shift_mm
    points = np.random.default_rng(1).uniform(-30, 30, (500, 3))
    return SeriesAlignment(
        rotations=np.tile(np.eye(3), (n, 1, 1)),
        translations_mm=translations,
        pe_affine=pe_affine,
        pe_axis=1,
        centre_mm=np.zeros(3),
        voxel_size_mm=np.array([2.0, 2.0, 2.0]),
        points_mm=points,
        group=np.array([0] + [1] * (n - 1)),
        registered=np.ones(n, bool),
    )


def test_eddy_fit_recovers_linear_gradient_dependence() -> None:
    rng = np.random.default_rng(2)
    n = 21
    bvecs = np.vstack([[0, 0, 0], rng.normal(size=(n - 1, 3))])
    bvecs[1:] /= np.linalg.norm(bvecs[1:], axis=1, keepdims=True)
    bvals = np.r_[0, np.full(n - 1, 2000.0)]
    bg = bvecs * bvals[:, None] / 1000
    shift = 0.8 * bg[:, 1] + 0.3  # mm; the constant is a group intercept, not eddy
    pe_affine = np.column_stack([0.01 * bg[:, 0], 0.02 * bg[:, 1], np.zeros(n)])
    pe_affine[0] = 0
    shift[0] = 0
    fit = fit_eddy(_alignment(n, shift, pe_affine), bvals, bvecs, tuple(range(1, n)))
    assert fit.r2 == pytest.approx(1.0, abs=1e-6)
    assert fit.coefficients[1, 0] == pytest.approx(0.8 / 2.0)  # PE voxels per ms/µm²
    np.testing.assert_allclose(fit.shift_mm[1:], 0.8 * bg[1:, 1], atol=1e-9)
    assert fit.shift_mm[0] == 0


def test_eddy_fit_of_noise_explains_little() -> None:
    rng = np.random.default_rng(3)
    n = 61
    bvecs = np.vstack([[0, 0, 0], rng.normal(size=(n - 1, 3))])
    bvecs[1:] /= np.linalg.norm(bvecs[1:], axis=1, keepdims=True)
    bvals = np.r_[0, np.full(n - 1, 1000.0)]
    fit = fit_eddy(_alignment(n, rng.normal(0, 0.1, n), rng.normal(0, 0.002, (n, 3))), bvals, bvecs, tuple(range(1, n)))
    assert fit.r2 < 0.3




@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(REAL_SERIES))
@pytest.mark.parametrize("problem", ["motion", "eddy_current"])
def test_real_series_not_above_mild(problem: str, name: str) -> None:
    """The shared series are clean acquisitions: nothing above mild, phantom not applicable."""
    scan, context = _real(name)
    finding = detector(problem)(scan, context)
    assert finding.severity in ("none", "mild"), finding.metrics
    assert finding.applicable == (not context.is_phantom)
