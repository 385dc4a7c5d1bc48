"""Voxel-size detector: grids set through the affine, and the real series."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from lcid.dwi.context import build_context
from lcid.dwi.problems import low_resolution
from lcid.io.scan import DWIScan
from tests.conftest import REAL_SERIES, make_scan


def _detect(voxel_mm: tuple[float, float, float], *, rotate_deg: float = 0.0):
    scan = make_scan(shape=(16, 16, 12), n_dirs=6, voxel_mm=voxel_mm)
    if rotate_deg:
        angle = np.deg2rad(rotate_deg)
        rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
        affine = scan.affine.copy()
        affine[:3, :3] = rotation @ affine[:3, :3]
        scan = scan.replace(affine=affine)
    return low_resolution.detect(scan, build_context(scan))


@pytest.mark.parametrize(
    ("voxel_mm", "severity", "supports"),
    [
        ((1.25, 1.25, 1.25), "none", ["dti", "tractography", "morphometry"]),
        ((2.0, 2.0, 2.0), "none", ["dti", "tractography"]),
        ((2.5, 2.5, 2.5), "none", ["dti", "tractography"]),
        ((3.0, 3.0, 3.0), "none", ["dti"]),
        ((2.0, 2.0, 3.5), "mild", []),
        ((1.0, 1.0, 4.0), "moderate", []),
        ((2.0, 2.0, 6.0), "severe", []),
        ((1.8, 1.8, 3.0), "none", ["dti"]),
    ],
)
def test_voxel_size_grades_and_supported_analyses(voxel_mm, severity, supports):
    finding = _detect(voxel_mm)
    assert finding.severity == severity
    assert finding.metrics["supports"] == supports
    assert finding.metrics["largest_edge_mm"] == pytest.approx(max(voxel_mm))
    assert finding.metrics["voxel_volume_mm3"] == pytest.approx(np.prod(voxel_mm), rel=1e-3)
    assert finding.metrics["anisotropy_ratio"] == pytest.approx(max(voxel_mm) / min(voxel_mm), rel=1e-3)
    assert (finding.confidence > 0.5) == (severity != "none")


def test_oblique_affine_keeps_voxel_size():
    finding = _detect((2.0, 2.0, 4.0), rotate_deg=25.0)
    assert finding.metrics["voxel_size_mm"] == pytest.approx([2.0, 2.0, 4.0], abs=1e-3)
    assert finding.severity == "moderate"


def test_confidence_is_sharp_away_from_the_bound():
    assert _detect((2.0, 2.0, 2.0)).confidence < 0.01
    assert _detect((2.0, 2.0, 4.5)).confidence > 0.99


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(REAL_SERIES))
def test_real_series(name):
    image = nib.load(str(REAL_SERIES[name]))  # header only: the grid decides
    scan = DWIScan(data=np.zeros((2, 2, 2, 2), np.float32), affine=image.affine, bvals=np.zeros(2), bvecs=np.zeros((2, 3)))
    finding = low_resolution.detect(scan, context=None)  # type: ignore[arg-type]
    expected = {"philips_elition": 2.0, "phantom": 2.4}.get(name, 3.0)
    assert finding.metrics["largest_edge_mm"] == pytest.approx(expected, abs=0.01)
    assert finding.severity == "none"
    assert "dti" in finding.metrics["supports"]
    assert ("tractography" in finding.metrics["supports"]) == (expected <= 2.5)
