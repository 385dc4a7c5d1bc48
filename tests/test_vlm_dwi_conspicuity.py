"""Conspicuity-based labels: a problem is labelled only where its mark beats the picture's noise."""

from __future__ import annotations

import numpy as np
import pytest

from lcid.simulate.phantom import make_phantom
from lcid.vlm.dwi.build import artifact_mark
from lcid.vlm.dwi.conspicuity import ROSE_K, detectability, noise_sigma, view_detectability
from lcid.vlm.dwi.visibility import SliceView, visible_labels
from lcid.vlm.render import plane_axis, window_limits


@pytest.fixture(scope="module")
def phantom():
    # pe along j (axis 1), slices along k (axis 2); snr 30 as the simulator's default
    return make_phantom(shape=(48, 48, 24), seed=0)


def _params(problem: str, strength: float, scan) -> dict:
    """Hand-set parameters of each simulator artifact: ``strength`` 1 = strong, tiny = faint."""
    if problem == "ghosting":
        return {"ghost_to_signal": strength, "torchio_intensity": 2 * strength / (1 + strength),
                "num_ghosts": 2, "axis": 1}
    if problem == "spikes":
        return {"slice_fraction": 0.01, "slice_axis": 2,
                "spikes": [{"volume": 1, "slice": 12, "position": [0.7, 0.65], "intensity": strength}]}
    return {"ringing_amplitude": 0.0, "kspace_fraction_kept": 0.4, "gain": strength, "axes": [0, 1]}


#: (strong, faint) artifact strengths of the simulator's own parameters.
STRENGTHS = {"ghosting": (0.3, 0.002), "spikes": (1.0, 0.0005), "gibbs_ringing": (1.0, 0.01)}


@pytest.mark.parametrize("problem", sorted(STRENGTHS))
def test_strong_mark_is_visible_and_faint_one_is_not(phantom, problem):
    from lcid.simulate.artifacts import artifact

    truth_entry = {"problem": problem, "severity": "severe", "where": {"pairs": [[1, 12]], "volumes": [0, 1]}}
    plane = "axial"
    axis = plane_axis(phantom.affine, plane)
    seen = {}
    for name, strength in zip(("strong", "faint"), STRENGTHS[problem], strict=True):
        params = _params(problem, strength, phantom)
        corrupted, _ = artifact(problem).apply(phantom, params)
        delta = artifact_mark(phantom, problem, params)
        vol = corrupted.data[..., 1]
        d = view_detectability(vol, {problem: delta[..., 1]}, corrupted.affine, plane=plane, index=12,
                               limits=window_limits(vol))[problem]
        view = SliceView(volume=1, axis=axis, index=12, slice_axis=2, pe_axis=1, detectability={problem: d})
        entry = {**truth_entry, "parameters": params}
        seen[name] = (d, visible_labels({"problems": [entry]}, view, acq_facts=None))
    assert seen["strong"][0] >= 2 * ROSE_K and seen["strong"][1] == (problem,)
    assert seen["faint"][0] < ROSE_K and seen["faint"][1] == ()


def test_geometry_stays_a_necessary_condition():
    # a strong ghost in a plane that does not contain the phase-encoding axis is not labelled
    entry = {"problem": "ghosting", "severity": "severe", "parameters": {"axis": 1}, "where": {}}
    view = SliceView(volume=0, axis=1, index=10, slice_axis=2, pe_axis=1, detectability={"ghosting": 100.0})
    assert visible_labels({"problems": [entry]}, view, acq_facts=None) == ()
    # without a measurement (data sets built before) the geometric rule alone decides
    unmeasured = SliceView(volume=0, axis=2, index=10, slice_axis=2, pe_axis=1)
    assert visible_labels({"problems": [entry]}, unmeasured, acq_facts=None) == ("ghosting",)


def test_noise_sigma_ignores_smooth_structure_and_sparse_edges():
    rng = np.random.default_rng(1)
    image = np.zeros((96, 96))
    image[20:70, 30:80] = 5.0  # a step edge much larger than the noise
    image += np.linspace(0, 3, 96)[None, :]
    assert noise_sigma(image + rng.normal(0, 0.2, image.shape)) == pytest.approx(0.2, rel=0.15)
    with pytest.raises(ValueError):
        noise_sigma(np.zeros(10))


def test_detectability_follows_the_rose_model():
    # a uniform patch of contrast C over A pixels: d' = sqrt(eta) * C * sqrt(A) / sigma
    rng = np.random.default_rng(2)
    base = rng.normal(0.5, 0.05, (64, 64))
    delta = np.zeros_like(base)
    delta[10:20, 10:20] = 0.1  # 100 pixels
    d = detectability(base + delta, delta, limits=(0.0, 1.0))
    assert d == pytest.approx(np.sqrt(0.5) * 0.1 * 10 / 0.05, rel=0.15)
    # a change hidden by the window's clipping does not count
    assert detectability(np.full((32, 32), 2.0), np.full((32, 32), 0.5), limits=(0.0, 1.0)) == 0.0
