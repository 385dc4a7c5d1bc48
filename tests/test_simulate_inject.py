"""inject(): the truth document, re-indexing, determinism; the ``lcid simulate`` command."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from lcid.cli import app
from lcid.dwi.severity import grade
from lcid.errors import InputError
from lcid.io.nifti import load_dwi, save_dwi
from lcid.simulate import inject, make_phantom
from lcid.simulate.artifacts import realised_magnitude
from tests.conftest import REAL_SERIES


@pytest.fixture(scope="module")
def small():
    return make_phantom(shape=(24, 24, 16), seed=0)


def test_truth_document(small):
    out, truth = inject(small, [("motion", "moderate"), ("missing_slices", "severe")], seed=7)
    assert set(truth) >= {"lcid_version", "seed", "source", "problems"}
    assert truth["seed"] == 7 and truth["source"] == "phantom"
    assert [(p["problem"], p["severity"]) for p in truth["problems"]] == [("motion", "moderate"), ("missing_slices", "severe")]
    for entry in truth["problems"]:
        assert set(entry) == {"problem", "severity", "parameters", "where"}
        assert grade(realised_magnitude(entry["problem"], entry["parameters"]), entry["problem"]) == entry["severity"]
    json.dumps(truth)
    again, truth_again = inject(small, [("motion", "moderate"), ("missing_slices", "severe")], seed=7)
    assert np.array_equal(out.data, again.data) and truth == truth_again
    other, _ = inject(small, [("motion", "moderate"), ("missing_slices", "severe")], seed=8)
    assert not np.array_equal(out.data, other.data)


def test_problems_are_applied_in_acquisition_order(small):
    """Asked in any order, the protocol comes first: a dropout is drawn on the volumes that
    remain after few_directions, so its where and its intensity ratio hold in the output."""
    out, truth = inject(small, [("missing_slices", "severe"), ("few_directions", "moderate")], seed=3)
    assert [p["problem"] for p in truth["problems"]] == ["few_directions", "missing_slices"]
    cut, dropout = truth["problems"]
    assert out.n_volumes == len(cut["parameters"]["kept_volumes"])
    reduced = small.replace(data=small.data[..., cut["parameters"]["kept_volumes"]])
    for v, s in dropout["where"]["pairs"]:
        assert out.data[:, :, s, v].sum() < 0.5 * reduced.data[:, :, s, v].sum()
    again, _ = inject(small, [("few_directions", "moderate"), ("missing_slices", "severe")], seed=3)
    assert np.array_equal(out.data, again.data)


def test_where_follows_later_slice_changes(small):
    """fov_cutoff crops slices after motion (the moved head is cut): motion's slice indices
    are re-indexed to the cropped grid."""
    for seed in range(20):
        out, truth = inject(small, [("motion", "severe"), ("fov_cutoff", "moderate")], seed=seed)
        moved, cut = truth["problems"]
        if moved["where"].get("slices") and cut["parameters"]["axis"] == 2:
            break
    start, stop = cut["parameters"]["keep"]
    original = {s for s in range(small.shape[2]) if start <= s < stop}
    assert all(0 <= s < out.shape[2] for s in moved["where"]["slices"])
    assert all(s + start in original for s in moved["where"]["slices"])
    for v, s in moved["where"]["pairs"]:
        assert 0 <= s < out.shape[2] and 0 <= v < out.n_volumes


def test_bad_arguments(small):
    with pytest.raises(InputError, match="unknown problem 'wobble'"):
        inject(small, [("wobble", "mild")], seed=0)
    with pytest.raises(InputError, match="unknown severity"):
        inject(small, [("motion", "none")], seed=0)


def _write_input(scan, folder):
    folder.mkdir()
    save_dwi(scan, folder, name="dwi")
    return folder / "dwi.nii.gz"


def test_simulate_command_same_bytes(tmp_path, small):
    source = _write_input(small, tmp_path / "in")
    runner = CliRunner()
    outs = []
    for name in ("a", "b"):
        result = runner.invoke(app, ["simulate", str(source), "--problem", "eddy_current", "--problem", "fov_cutoff",
                                     "--severity", "moderate", "--severity", "mild", "--seed", "7",
                                     "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        outs.append(tmp_path / name)
    names = sorted(p.name for p in outs[0].iterdir())
    assert names == ["dwi.bval", "dwi.bvec", "dwi.json", "dwi.nii.gz", "truth.json"]
    for name in names:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes()
    truth = json.loads((outs[0] / "truth.json").read_text())
    assert [p["problem"] for p in truth["problems"]] == ["fov_cutoff", "eddy_current"]  # acquisition order
    loaded = load_dwi(outs[0] / "dwi.nii.gz")
    assert loaded.shape[2] == truth["problems"][0]["parameters"]["keep"][1] - truth["problems"][0]["parameters"]["keep"][0]
    assert len(loaded.sidecar["SliceTiming"]) == loaded.shape[2]
    image = nib.load(str(outs[0] / "dwi.nii.gz"))
    assert np.allclose(image.affine, loaded.affine) and image.header["sform_code"] == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--problem", "wobble"], "unknown problem"),
        (["--problem", "motion", "--severity", "extreme"], "unknown severity"),
        (["--problem", "motion", "--severity", "mild", "--severity", "severe"], "once per --problem"),
    ],
)
def test_simulate_command_errors(tmp_path, small, args, message):
    source = _write_input(small, tmp_path / "in")
    result = CliRunner().invoke(app, ["simulate", str(source), *args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "truth.json").exists()


def test_simulate_missing_input(tmp_path):
    result = CliRunner().invoke(app, ["simulate", str(tmp_path / "nope.nii.gz"), "-p", "motion", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "not found" in result.output


@pytest.mark.integration
def test_real_series_all_core_problems(tmp_path):
    """Motion, dropout and a superior cut on a real Philips series: truth matches the written files."""
    path = REAL_SERIES["philips_achieva"]
    scan = load_dwi(path)
    out, truth = inject(scan, [("motion", "moderate"), ("missing_slices", "moderate"), ("fov_cutoff", "moderate")], seed=5)
    motion, cut, dropout = truth["problems"]
    assert truth["source"] == str(path)
    assert 2.0 <= motion["parameters"].get("max_fd_mm", motion["parameters"].get("shift_voxels")) < 4.0
    start, stop = cut["parameters"]["keep"]
    axis = cut["parameters"]["axis"]
    assert out.shape[axis] == stop - start
    index = [slice(None)] * 4
    index[axis] = slice(start, stop)
    voxel = np.array([10, 20, 5, 1.0])
    old = voxel.copy()
    old[axis] += start
    assert np.allclose(out.affine @ voxel, scan.affine @ old)
    for v, s in dropout["where"]["pairs"]:
        assert 0 <= s < out.shape[2] and 0 <= v < out.n_volumes
    folder = tmp_path / "sim"
    folder.mkdir()
    save_dwi(out, folder)
    reread = load_dwi(folder / "dwi.nii.gz")
    assert reread.shape == out.shape and np.allclose(reread.affine, out.affine)


def test_simulator_fingerprint_follows_the_code(tmp_path, monkeypatch):
    """The cache key of simulated scans changes when any simulator file changes."""
    from lcid.simulate import fingerprint

    first = fingerprint.simulator_fingerprint()
    assert len(first) == 16 and first == fingerprint.simulator_fingerprint()
    package = tmp_path / "simulate"
    package.mkdir()
    (package / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(fingerprint, "__file__", str(package / "fingerprint.py"))
    fingerprint.simulator_fingerprint.cache_clear()
    before = fingerprint.simulator_fingerprint()
    (package / "a.py").write_text("x = 2\n")
    fingerprint.simulator_fingerprint.cache_clear()
    assert fingerprint.simulator_fingerprint() != before
    fingerprint.simulator_fingerprint.cache_clear()
