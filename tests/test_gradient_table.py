"""The gradient-table detector: entry consistency, and axis flips/permutations by fibre coherence."""

from __future__ import annotations

import numpy as np
import pytest

from lcid.dwi.context import build_context
from lcid.dwi.problems import gradient_table
from lcid.io.scan import DWIScan
from tests.conftest import REAL_SERIES, fibonacci_directions
from tests.conftest import real_scan as _real


def _diagonal_band_scan(shape=(32, 32, 12), n_dirs=30, seed=0) -> DWIScan:
    """A head whose fibres run diagonally in-plane along (1, 1, 0): sign flips of x or y move
    the step across the band, so they are detectable (fibres along an axis are not)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"), axis=-1)
    brain = np.sqrt(((grid / 0.85) ** 2).sum(-1)) < 1.0
    band = brain & (np.abs(grid[..., 0] - grid[..., 1]) < 0.3)
    fibre = np.array([1.0, 1.0, 0.0]) / np.sqrt(2)
    bvecs = np.concatenate([np.zeros((2, 3)), fibonacci_directions(n_dirs)])
    bvals = np.concatenate([np.zeros(2), np.full(n_dirs, 1000.0)])
    data = np.empty(shape + (len(bvals),), np.float32)
    for v, (b, g) in enumerate(zip(bvals, bvecs, strict=True)):
        adc = np.where(band, 0.3e-3 + 1.4e-3 * (g @ fibre) ** 2, 0.8e-3)
        data[..., v] = np.where(brain, 1000.0 * np.exp(-b * adc), 0) + rng.normal(0, 10, shape)
    return DWIScan(data=np.abs(data), affine=np.diag([-2.0, 2, 2, 1]), bvals=bvals, bvecs=bvecs)


def test_clean_table_is_consistent_and_not_flipped(synthetic_scan):
    finding = gradient_table.detect(synthetic_scan, build_context(synthetic_scan))
    assert finding.severity == "none"
    assert finding.metrics["axis_check_applicable"] and not finding.metrics["flipped"]
    # The band is a sheet in the x-z plane: steps along x or z are equally coherent.
    assert finding.metrics["coherence_gain"] < gradient_table.MIN_GAIN
    assert finding.confidence < 0.5


def test_entry_issues_are_counted():
    bvals = np.array([0, 1000, 1000, 1000, 1000, 5])
    bvecs = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0.5, 0], [0, 0, 1], [1, 0, 0]], float)
    issues = gradient_table.table_issues(bvals, bvecs)
    assert issues["zero_vector_dw"] == 1
    assert issues["non_unit_vectors"] == 1
    assert issues["bad_volumes"] == [2, 3]
    assert issues["bval_unit_suspect"] == ""


def test_norm_encoded_b_scaling_is_a_convention_not_an_error():
    bvals = np.array([0, 3000, 3000, 3000, 3000, 3000])
    bvecs = np.array([[0, 0, 0], [1, 0, 0], [0, 0.577, 0], [0.577, 0, 0], [0, 0, 0.816], [0.816, 0, 0]])
    issues = gradient_table.table_issues(bvals, bvecs)
    assert issues["bvec_norm_encodes_b"] and issues["bad_volumes"] == []


@pytest.mark.parametrize(("bvals", "unit"), [([0, 1, 1, 1], "ms/um2"), ([0, 1e9, 1e9, 1e9], "s/m2")])
def test_wrong_bval_units_are_flagged(bvals, unit):
    bvecs = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    issues = gradient_table.table_issues(np.array(bvals, float), bvecs)
    assert issues["bval_unit_suspect"] == unit
    assert issues["bad_volumes"] == [1, 2, 3]


def test_zero_vectors_grade_by_fraction(synthetic_scan):
    bvecs = synthetic_scan.bvecs.copy()
    bvecs[2:10] = 0  # 8 of 30 DW volumes
    scan = synthetic_scan.replace(bvecs=bvecs)
    finding = gradient_table.detect(scan, build_context(scan))
    assert finding.metrics["inconsistent_fraction"] == pytest.approx(8 / 30)
    assert finding.severity == "moderate"
    assert finding.where["volumes"] == list(range(2, 10))


def test_swapped_x_y_is_found_on_the_x_band(synthetic_scan):
    scan = synthetic_scan.replace(bvecs=synthetic_scan.bvecs[:, [1, 0, 2]])
    finding = gradient_table.detect(scan, build_context(scan))
    # Any relabelling that moves the fitted y-eigenvectors back into the x-z sheet is coherent.
    assert finding.metrics["best_transform"].split(",")[1].lstrip("-") != "y"
    assert finding.severity == "severe" and finding.confidence > 0.9


@pytest.mark.parametrize("axis", [0, 1])
def test_sign_flip_is_found_on_a_diagonal_band(axis):
    clean = _diagonal_band_scan()
    assert gradient_table.detect(clean, build_context(clean)).metrics["best_transform"] == "x,y,z"
    bvecs = clean.bvecs.copy()
    bvecs[:, axis] *= -1
    scan = clean.replace(bvecs=bvecs)
    finding = gradient_table.detect(scan, build_context(scan))
    # For fibres in the x-y plane, flipping x or y gives the same axis (v ~ -v).
    assert finding.detected and finding.metrics["best_transform"] in {"-x,y,z", "x,-y,z"}


def test_phantom_skips_the_axis_check_but_not_the_entries(synthetic_scan):
    bvecs = synthetic_scan.bvecs.copy()
    bvecs[5] = 0
    scan = synthetic_scan.replace(bvecs=bvecs[:, [1, 0, 2]])
    finding = gradient_table.detect(scan, build_context(scan, anatomy="phantom"))
    assert finding.applicable
    assert not finding.metrics["axis_check_applicable"]
    assert finding.metrics["zero_vector_dw"] == 1 and finding.detected


def test_coherence_scores_cover_24_transforms(synthetic_scan):
    finding = gradient_table.detect(synthetic_scan, build_context(synthetic_scan))
    scores = finding.evidence["coherence_by_transform"]
    assert len(scores) == 24 and all(0 <= v <= 1 for v in scores.values())


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(REAL_SERIES))
def test_real_series(name):
    scan, context = _real(name)
    finding = gradient_table.detect(scan, context)
    print(name, finding.severity, finding.metrics)
    assert finding.severity == "none"
    assert finding.metrics["axis_check_applicable"] == (not context.is_phantom)


@pytest.mark.integration
@pytest.mark.parametrize("name", ["siemens_ap", "philips_elition", "philips_achieva"])
def test_real_brain_with_flipped_and_swapped_axes(name):
    scan, context = _real(name)
    flipped = gradient_table.detect(scan.replace(bvecs=scan.bvecs * [1, -1, 1]), context)
    swapped = gradient_table.detect(scan.replace(bvecs=scan.bvecs[:, [0, 2, 1]]), context)
    print(name, flipped.metrics["coherence_gain"], swapped.metrics["coherence_gain"])
    assert flipped.metrics["best_transform"] == "x,-y,z" and flipped.severity == "severe"
    assert swapped.metrics["best_transform"] == "x,z,y" and swapped.severity == "severe"
