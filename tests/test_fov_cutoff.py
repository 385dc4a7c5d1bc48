"""FOV cut-off detector: cropped synthetic heads in several orientations, and real series."""

from __future__ import annotations

import numpy as np
import pytest

from lcid.dwi.context import build_context
from lcid.dwi.problems import fov_cutoff
from lcid.io.scan import DWIScan
from tests.conftest import REAL_SERIES, make_scan
from tests.conftest import real_scan as _real

SHAPE = (32, 32, 40)
STEP = 2.0
#: Brain apex of make_scan's ellipsoid (semi-axis 0.8 of the half-extent) in slice-index mm.
#: The tolerance of the estimates (4 mm, two slices) covers the b0 mask's smoothing at the cut.
APEX_MM = (0.8 + 1) / 2 * (SHAPE[2] - 1) * STEP


def _head() -> DWIScan:
    return make_scan(shape=SHAPE, n_dirs=6, n_b0=1, seed=1)


def _crop(scan: DWIScan, keep: slice) -> DWIScan:
    return scan.replace(data=np.ascontiguousarray(scan.data[:, :, keep]))


def _detect(scan: DWIScan, **kwargs):
    return fov_cutoff.detect(scan, build_context(scan, **kwargs))


def _true_superior_cut(n_kept: int) -> float:
    return APEX_MM - ((n_kept - 1) * STEP + STEP / 2)


def test_full_coverage_is_not_cut():
    finding = _detect(_head())
    assert finding.severity == "none"
    assert finding.metrics["superior_cut_mm"] == 0.0
    assert finding.metrics["superior_margin_mm"] > 0
    assert finding.evidence["si_profile_mm2"].shape == (SHAPE[2],)


@pytest.mark.parametrize("n_kept", [33, 30, 27])
def test_cropped_vertex_is_measured(n_kept):
    finding = _detect(_crop(_head(), slice(0, n_kept)))
    truth = _true_superior_cut(n_kept)
    assert finding.metrics["superior_cut_mm"] == pytest.approx(truth, abs=4.0)
    assert finding.detected
    assert finding.metrics["cut_edges"] == ["superior"]
    assert finding.where["slices"] == [n_kept - 1]


def _thick(scan: DWIScan, k: int) -> DWIScan:
    """Average ``k`` slices into one slab (a thicker 2D slice), top slab flush with the old top."""
    n = scan.shape[2] // k * k
    start = scan.shape[2] - n
    data = scan.data[:, :, start:].reshape(*scan.shape[:2], n // k, k, -1).mean(axis=3)
    affine = scan.affine.copy()
    affine[:3, 3] += affine[:3, :3] @ np.array([0.0, 0.0, start + (k - 1) / 2])
    affine[:3, 2] *= k
    return scan.replace(data=np.ascontiguousarray(data, dtype=np.float32), affine=affine)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_thick_slabs_do_not_change_the_estimate(k):
    full = _thick(_head(), k)
    assert _detect(full).severity == "none"
    cropped = _crop(_head(), slice(0, 30))
    thin = _detect(cropped).metrics["superior_cut_mm"]
    assert _detect(_thick(cropped, k)).metrics["superior_cut_mm"] == pytest.approx(thin, abs=3.0)


def test_flipped_axis_finds_the_superior_end():
    scan = _crop(_head(), slice(0, 28))
    affine = scan.affine.copy()
    affine[:3, 2] *= -1  # slice index now runs superior -> inferior
    flipped = scan.replace(data=np.ascontiguousarray(scan.data[:, :, ::-1]), affine=affine)
    finding = _detect(flipped)
    assert finding.metrics["superior_edge_index"] == 0
    assert finding.where["slices"] == [0]
    assert finding.metrics["superior_cut_mm"] == pytest.approx(_true_superior_cut(28), abs=4.0)


def test_sagittal_stack_uses_the_in_plane_superior_axis():
    scan = _crop(_head(), slice(0, 28))
    data = np.ascontiguousarray(np.transpose(scan.data, (2, 0, 1, 3)))  # voxel axis 0 is now S
    affine = np.eye(4)
    affine[:3, :3] = scan.affine[:3, :3][:, [2, 0, 1]]
    finding = _detect(scan.replace(data=data, affine=affine))
    assert finding.metrics["si_voxel_axis"] == 0
    assert finding.metrics["superior_cut_mm"] == pytest.approx(_true_superior_cut(28), abs=4.0)
    assert finding.where["slices"] == []  # S-I is not the slice axis


def test_inferior_cut_is_reported_but_graded_lower():
    head = _head()
    inferior = _detect(_crop(head, slice(12, None)))
    superior = _detect(_crop(head, slice(0, SHAPE[2] - 12)))
    assert inferior.metrics["inferior_cut_mm"] > 0
    assert inferior.metrics["superior_cut_mm"] == 0.0
    assert inferior.metrics["inferior_edge_area_fraction"] > 0.3
    assert inferior.confidence < superior.confidence


def test_phantom_is_not_applicable():
    finding = _detect(_head(), anatomy="phantom")
    assert not finding.applicable
    assert finding.severity == "none"


def test_dome_cut_of_an_exact_ellipsoid_profile():
    c, step = 60.0, 2.0
    heights = np.arange(-58, 50, step)  # largest section at 0, apex at 60, edge at 49
    profile = np.clip(1 - (heights / c) ** 2, 0, None)
    result = fov_cutoff.dome_cut_mm(profile, step=step)
    assert result["cut_mm"] == pytest.approx(c - (heights[-1] + step / 2), abs=0.5)
    full = fov_cutoff.dome_cut_mm(np.concatenate([profile, np.zeros(5)]), step=step)
    assert full["cut_mm"] == 0.0 and full["margin_mm"] == pytest.approx(5 * step)


def test_superior_axis_of_rotated_affines():
    assert fov_cutoff.superior_axis(np.diag([-2.0, 2.0, 2.0, 1.0])) == (2, True)
    coronal = np.array([[-1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]])
    assert fov_cutoff.superior_axis(coronal) == (1, False)
    prone = np.diag([1.0, -1.0, -1.0, 1.0])
    assert fov_cutoff.superior_axis(prone) == (2, False)




@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(REAL_SERIES))
def test_real_series(name):
    scan, context = _real(name)
    finding = fov_cutoff.detect(scan, context)
    if name == "phantom":
        assert not finding.applicable
    elif name == "philips_elition":  # full brain, empty top slices
        assert finding.severity == "none"
        assert finding.metrics["superior_margin_mm"] > 0
    else:  # tight 117-120 mm coverage: brain in the top slice
        assert finding.metrics["superior_edge_area_fraction"] > 0.1
        assert finding.metrics["superior_cut_mm"] < 20


@pytest.mark.integration
def test_real_full_brain_cropped_at_the_vertex():
    scan, _ = _real("philips_elition")  # brain ends at slice 79 of 82 (2 mm)
    keep = 80 - 6  # 12 mm of vertex removed
    cropped = scan.replace(data=np.ascontiguousarray(scan.data[:, :, :keep]))
    finding = fov_cutoff.detect(cropped, build_context(cropped))
    assert finding.metrics["superior_cut_mm"] == pytest.approx(12.0, abs=4.0)
    assert finding.severity == "moderate"
