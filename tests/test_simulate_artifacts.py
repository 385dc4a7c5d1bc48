"""Each simulated problem does what its ground truth says."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage.registration import phase_cross_correlation

from lcid.dwi.gradients import b0_mask, shells
from lcid.dwi.severity import grade
from lcid.dwi.vocabulary import PROBLEM_IDS
from lcid.errors import InputError
from lcid.io.scan import DWIScan
from lcid.simulate.anatomy import object_mask
from lcid.simulate.artifacts import artifact, realised_magnitude
from lcid.simulate.phantom import make_phantom

#: Severities a 32x32x20 phantom (2 mm, 66 volumes) can show for each problem.
FEASIBLE = {p: ("mild", "moderate", "severe") for p in PROBLEM_IDS}
FEASIBLE["fov_cutoff"] = ("mild", "moderate")  # 20-40 mm is more than half of a 28 mm object


@pytest.fixture(scope="module")
def phantom() -> DWIScan:
    return make_phantom(shape=(32, 32, 20), seed=0)


@pytest.fixture(scope="module")
def clean() -> DWIScan:
    return make_phantom(shape=(32, 32, 20), snr=0)


@pytest.mark.parametrize("problem", PROBLEM_IDS)
def test_family_contract(problem, phantom):
    """sample is JSON-serialisable with the magnitude in the severity's range; apply is deterministic."""
    module = artifact(problem)
    for severity in FEASIBLE[problem]:
        params = module.sample(np.random.default_rng(11), phantom, severity)
        assert json.loads(json.dumps(params)) == params
        assert grade(realised_magnitude(problem, params), problem) == severity
        first, where = module.apply(phantom, json.loads(json.dumps(params)))
        again, _ = module.apply(phantom, params)
        assert np.array_equal(first.data, again.data) and np.array_equal(first.bvecs, again.bvecs)
        assert first.data.dtype == np.float32 and np.isfinite(first.data).all()
        assert set(where) <= {"volumes", "slices", "pairs", "axis", "edge"}
        for v in where.get("volumes", []):
            assert 0 <= v < first.n_volumes
        for v, s in where.get("pairs", []):
            assert 0 <= v < first.n_volumes and 0 <= s < first.shape[2]
        if problem != "gradient_table":
            assert not np.array_equal(first.data, phantom.data) or first.shape != phantom.shape


def test_unknown_problem_and_severity(phantom):
    with pytest.raises(InputError, match="unknown problem"):
        artifact("wobble")
    with pytest.raises(InputError, match="unknown severity"):
        artifact("motion").sample(np.random.default_rng(0), phantom, "huge")


def test_motion_translation_recovered(clean):
    from lcid.simulate.artifacts import motion

    params = {"mode": "inter_volume", "volumes": [0], "translations_mm": [[1.3, -0.7, 0.9]],
              "rotations_deg": [[0.0, 0.0, 0.0]], "center_mm": [0.0, 0.0, 0.0], "max_fd_mm": 2.9}
    moved, where = motion.apply(clean, params)
    assert where == {"volumes": [0]}
    shift, _, _ = phase_cross_correlation(moved.data[..., 0], clean.data[..., 0], upsample_factor=20)
    assert np.allclose(shift * 2.0, [1.3, -0.7, 0.9], atol=0.5)
    assert np.array_equal(moved.bvecs, clean.bvecs)  # the table is not updated, as on a scanner


def test_motion_rigid_recovered_by_registration(clean):
    """DIPY rigid registration finds the injected rotation + translation within 0.5 mm."""
    from dipy.align import affine_registration

    from lcid.simulate.artifacts import motion

    params = {"mode": "inter_volume", "volumes": [1], "translations_mm": [[1.0, 0.5, -0.8]],
              "rotations_deg": [[3.0, -2.0, 4.0]], "center_mm": [0.0, 0.0, 0.0], "max_fd_mm": 0.0}
    moved, _ = motion.apply(clean, params)
    _, found = affine_registration(
        moved.data[..., 1], clean.data[..., 1], moving_affine=clean.affine, static_affine=clean.affine,
        pipeline=["center_of_mass", "translation", "rigid"], level_iters=[200, 100], sigmas=[1, 0], factors=[2, 1],
    )
    truth = motion.rigid_matrix([1.0, 0.5, -0.8], [3.0, -2.0, 4.0], [0, 0, 0])
    mask = object_mask(clean)
    points = (clean.affine @ np.c_[np.argwhere(mask), np.ones(mask.sum())].T)
    # `found` maps static (original) points to where they are in the moving (moved) image.
    error = np.linalg.norm((truth - found) @ points, axis=0)
    assert error.max() < 0.5


def test_motion_fd_and_anatomical_bvecs(phantom):
    from lcid.simulate.artifacts import motion

    params = None
    for seed in range(20):
        params = motion.sample(np.random.default_rng(seed), phantom, "moderate")
        if params["mode"] == "inter_volume":
            break
    series = np.zeros((phantom.n_volumes, 6))
    series[params["volumes"], :3] = params["translations_mm"]
    series[params["volumes"], 3:] = np.radians(params["rotations_deg"])
    assert motion.framewise_displacement(series).max() == pytest.approx(params["max_fd_mm"], abs=1e-4)
    _, _ = motion.apply(phantom, params)
    for tabled, anatomical in zip(params["tabled_bvecs"], params["anatomical_bvecs"], strict=True):
        if np.linalg.norm(tabled) > 0:
            assert np.linalg.norm(anatomical) == pytest.approx(1.0, abs=1e-5)
            assert not np.allclose(tabled, anatomical, atol=1e-4)


def test_interleaved_slices_shifted(clean):
    from lcid.simulate.artifacts import motion

    params = {"mode": "interleaved", "shift_voxels": 2.0, "volumes": [0], "slice_axis": 2,
              "shifted_slices": [9, 11], "shift_vector_voxels": [0.0, 2.0, 0.0]}
    moved, where = motion.apply(clean, params)
    assert where["pairs"] == [[0, 9], [0, 11]]
    assert np.array_equal(moved.data[:, :, 10, 0], clean.data[:, :, 10, 0])
    shift, _, _ = phase_cross_correlation(moved.data[:, :, 9, 0], clean.data[:, :, 9, 0], upsample_factor=20)
    assert np.allclose(shift, [0.0, 2.0], atol=0.2)


def test_eddy_shift_along_pe_only_in_dw(clean):
    from lcid.simulate.artifacts import eddy_current

    params = eddy_current.sample(np.random.default_rng(2), clean, "severe")
    k = np.asarray(params["k_matrix"])
    k[1:] = 0.0  # keep only the shift term: a pure translation along PE
    params["k_matrix"] = k.tolist()
    out, _ = eddy_current.apply(clean, params)
    b0 = b0_mask(clean.bvals)
    assert np.array_equal(out.data[..., b0], clean.data[..., b0])
    coeffs = eddy_current._coefficients(clean, k)
    v = int(np.argmax(np.abs(coeffs[:, 0])))
    shift, _, _ = phase_cross_correlation(out.data[..., v], clean.data[..., v], upsample_factor=20)
    assert shift[1] == pytest.approx(coeffs[v, 0], abs=0.2)
    assert abs(shift[0]) < 0.2 and abs(shift[2]) < 0.2


def test_missing_slices_ratio(phantom):
    from lcid.simulate.artifacts import missing_slices

    params = missing_slices.sample(np.random.default_rng(4), phantom, "moderate")
    out, where = missing_slices.apply(phantom, params)
    for event in params["events"]:
        for s in event["slices"]:
            ratio = out.data[:, :, s, event["volume"]].sum() / phantom.data[:, :, s, event["volume"]].sum()
            assert ratio == pytest.approx(1 - event["fraction_lost"], rel=1e-4)
    untouched = np.ones(out.data.shape[2:], bool)
    for v, s in where["pairs"]:
        untouched[s, v] = False
    assert np.array_equal(out.data[:, :, untouched], phantom.data[:, :, untouched])


def test_missing_slices_multiband_groups(phantom):
    from lcid.simulate.artifacts import missing_slices

    sidecar = {k: v for k, v in phantom.sidecar.items() if k != "SliceTiming"}
    scan = phantom.replace(sidecar={**sidecar, "MultibandAccelerationFactor": 2})
    params = missing_slices.sample(np.random.default_rng(0), scan, "severe")
    for event in params["events"]:
        assert len(event["slices"]) == 2 and event["slices"][1] - event["slices"][0] == 10


@pytest.mark.parametrize("end", ["superior", "inferior"])
def test_fov_cutoff_edge_and_affine(phantom, end):
    from lcid.simulate.artifacts import fov_cutoff

    flipped = phantom.replace(data=phantom.data[:, :, ::-1].copy(),
                              affine=phantom.affine @ np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, -1, 19], [0, 0, 0, 1]]))
    for scan in (phantom, flipped):  # RAS and RAI: the superior end is found from the affine
        params = next(p for p in (fov_cutoff.sample(np.random.default_rng(s), scan, "moderate") for s in range(30))
                      if p["end"] == end)
        out, where = fov_cutoff.apply(scan, params)
        start, stop = params["keep"]
        assert out.shape[2] == stop - start
        assert np.array_equal(out.data, scan.data[:, :, start:stop])
        for k in (0, out.shape[2] - 1):  # world position of remaining voxels unchanged
            assert np.allclose(out.affine @ [3, 5, k, 1], scan.affine @ [3, 5, k + start, 1])
        mask = object_mask(out)
        assert mask[:, :, where["slices"][0]].any()  # the object touches the new edge
        superior_z = (out.affine @ [0, 0, where["slices"][0], 1])[2]
        other_z = (out.affine @ [0, 0, out.shape[2] - 1 - where["slices"][0], 1])[2]
        assert (superior_z > other_z) == (end == "superior")
        assert len(out.sidecar["SliceTiming"]) == out.shape[2]


def test_low_resolution_voxel_size(phantom):
    from lcid.simulate.artifacts import low_resolution

    for seed in range(6):
        params = low_resolution.sample(np.random.default_rng(seed), phantom, "moderate")
        out, _ = low_resolution.apply(phantom, params)
        assert list(out.shape[:3]) == params["new_shape"]
        assert np.allclose(out.voxel_size_mm, params["new_voxel_mm"], atol=1e-6)
        assert max(out.voxel_size_mm) == pytest.approx(params["largest_voxel_mm"])
        # Same field of view (its corner stays where it was) and mean intensity.
        assert np.allclose(np.array(out.shape[:3]) * out.voxel_size_mm, np.array(phantom.shape[:3]) * 2.0)
        assert np.allclose(out.affine @ [-0.5, -0.5, -0.5, 1], phantom.affine @ [-0.5, -0.5, -0.5, 1])
        assert out.data[..., 0].mean() == pytest.approx(phantom.data[..., 0].mean(), rel=0.05)


def test_low_resolution_keeps_positions_and_does_not_wrap():
    """A bright plane at the top slice stays at the top after thicker slices (no wrap into
    the bottom), and an in-plane edge keeps its physical position within half an old voxel."""
    from lcid.simulate.artifacts import low_resolution

    data = np.zeros((40, 40, 30, 1), np.float32)
    data[10:30, 10:30, :, 0] = 100.0
    data[:, :, -1, 0] = 500.0
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    scan = DWIScan(data=data, affine=affine, bvals=np.zeros(1), bvecs=np.zeros((1, 3)))
    params = {"new_shape": [20, 40, 10]}
    out, _ = low_resolution.apply(scan, params)
    assert out.data[:, :, 0, 0].max() < 150  # nothing wrapped from the top
    assert out.data[:, :, -1, 0].max() > 200
    # The edge between x = 9 and 10 (old voxels, 19 mm) is where the profile crosses half height.
    profile = out.data[:, 20, 5, 0]
    x_mm = (out.affine @ np.c_[np.arange(20), np.full(20, 20), np.full(20, 5), np.ones(20)].T)[0]
    crossing = np.interp(50.0, profile[:10], x_mm[:10])
    assert abs(crossing - 19.0) < 1.0


def test_few_directions_count(phantom):
    from lcid.simulate.artifacts import few_directions

    for severity in ("mild", "moderate", "severe"):
        params = few_directions.sample(np.random.default_rng(1), phantom, severity)
        out, _ = few_directions.apply(phantom, params)
        best = max(s.unique_directions for s in shells(out.bvals, out.bvecs))
        assert 30 - best == params["deficit"]
        assert b0_mask(out.bvals).sum() == 2
    scan3 = phantom.replace(data=phantom.data[..., :5], bvals=phantom.bvals[:5], bvecs=phantom.bvecs[:5])
    with pytest.raises(InputError, match="only 3 directions"):
        few_directions.sample(np.random.default_rng(0), scan3, "mild")  # deficit 27 is already severe


def test_noise_reaches_target_snr(clean):
    from lcid.simulate.artifacts import noise

    params = noise.sample(np.random.default_rng(3), clean, "moderate")
    out, _ = noise.apply(clean, params)
    mask = object_mask(clean)
    sigma = (out.data[..., 0] - clean.data[..., 0])[mask].std()
    assert sigma / params["mean_b0_signal"] == pytest.approx(params["inverse_snr"], rel=0.1)


def test_gibbs_overshoot_as_stated():
    from lcid.simulate.artifacts import gibbs_ringing

    data = np.zeros((64, 64, 4, 1), np.float32)
    data[8:56, 16:48] = 100.0  # wide along x, a step along y (PE)
    scan = DWIScan(data=data, affine=np.eye(4), bvals=np.zeros(1), bvecs=np.zeros((1, 3)))
    params = gibbs_ringing.sample(np.random.default_rng(0), scan, "moderate")
    out, _ = gibbs_ringing.apply(scan, params)
    profile = out.data[32, :, 1, 0]
    assert (profile.max() - 100.0) / 100.0 == pytest.approx(params["ringing_amplitude"], abs=0.03)


def test_ghost_to_signal_ratio():
    from lcid.simulate.artifacts import ghosting

    data = np.zeros((32, 32, 8, 2), np.float32)
    data[8:24, 2:14, 2:6] = 100.0  # object in the first half along PE (axis 1)
    scan = DWIScan(data=data, affine=np.eye(4), bvals=np.zeros(2), bvecs=np.zeros((2, 3)),
                   sidecar={"PhaseEncodingDirection": "j"})
    params = ghosting.sample(np.random.default_rng(0), scan, "moderate")
    out, _ = ghosting.apply(scan, params)
    ghost = out.data[8:24, 18:30, 2:6].mean()
    signal = out.data[8:24, 2:14, 2:6].mean()
    assert ghost / signal == pytest.approx(params["ghost_to_signal"], rel=0.05)


def test_spikes_only_in_listed_slices(phantom):
    from lcid.simulate.artifacts import spikes

    params = spikes.sample(np.random.default_rng(5), phantom, "moderate")
    out, where = spikes.apply(phantom, params)
    hit = np.zeros(out.data.shape[2:], bool)
    for v, s in where["pairs"]:
        hit[s, v] = True
        assert np.abs(out.data[:, :, s, v] - phantom.data[:, :, s, v]).mean() > 0.05 * phantom.data[:, :, s, v].mean()
    assert np.array_equal(out.data[:, :, ~hit], phantom.data[:, :, ~hit])
    assert hit.sum() / hit.size == pytest.approx(params["slice_fraction"], abs=1e-6)


def test_gradient_table_kinds(phantom):
    from lcid.simulate.artifacts import gradient_table

    dw = ~b0_mask(phantom.bvals)
    out, _ = gradient_table.apply(phantom, {"kind": "flip", "axis": 0, "fraction": 1.0})
    assert np.array_equal(out.bvecs[:, 0], -phantom.bvecs[:, 0] + 0.0) and np.array_equal(out.data, phantom.data)
    out, _ = gradient_table.apply(phantom, {"kind": "permute", "axes": [0, 2], "fraction": 1.0})
    assert np.array_equal(out.bvecs[:, [2, 1, 0]], phantom.bvecs)
    params = gradient_table.sample(np.random.default_rng(0), phantom, "moderate")
    out, where = gradient_table.apply(phantom, params)
    changed = np.flatnonzero(np.any(out.bvecs != phantom.bvecs, axis=1))
    assert changed.tolist() == where["volumes"]
    assert len(changed) / dw.sum() == pytest.approx(params["fraction"])


def test_ghosting_matches_torchio(phantom):
    import torch
    import torchio as tio

    from lcid.simulate.artifacts import ghosting

    volume = phantom.data[..., 0]
    ours = ghosting.ghost(volume[..., None], axis=1, num_ghosts=2, intensity=0.2)[..., 0]
    theirs = tio.Ghosting(num_ghosts=2, axis=1, intensity=0.2, restore=0.0).add_artifact(
        torch.from_numpy(volume.copy()), 2, 1, 0.2, 0.0
    )
    assert np.allclose(ours, np.abs(theirs.numpy()), atol=1e-3 * volume.max())
