"""Loading and validating inputs: NIfTI + gradients, DICOM folders, BIDS data sets."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lcid.errors import InputError
from lcid.io.bids import find_dwi_runs
from lcid.io.dicom import convert_dicom_folder
from lcid.io.gradient_files import read_bvals, read_bvecs, write_gradients
from lcid.io.nifti import load_dwi
from lcid.workflows.check import concatenate, resolve_inputs, reverse_pe_partners
from tests.conftest import make_scan
from tests.dicom_series import write_dicom_series


def save_scan(folder: Path, name: str = "dwi", *, n: int | None = None, sidecar: dict | None = None) -> Path:
    scan = make_scan(shape=(12, 12, 8), n_dirs=8)
    data = scan.data if n is None else scan.data[..., :n]
    path = folder / f"{name}.nii.gz"
    nib.save(nib.Nifti1Image(data, scan.affine), path)
    write_gradients(scan.bvals, scan.bvecs, folder / name)
    if sidecar is not None:
        (folder / f"{name}.json").write_text(json.dumps(sidecar))
    return path


def test_load_finds_companions_and_sidecar(tmp_path):
    path = save_scan(tmp_path, sidecar={"PhaseEncodingDirection": "j-"})
    scan = load_dwi(path)
    assert scan.shape == (12, 12, 8, 10)
    assert scan.bvecs.shape == (10, 3)
    assert scan.phase_encoding_axis == 1
    assert scan.voxel_size_mm == pytest.approx((2, 2, 2))


def test_bvec_column_mismatch_names_both_counts(tmp_path):
    path = save_scan(tmp_path)
    bvec = np.loadtxt(tmp_path / "dwi.bvec")
    np.savetxt(tmp_path / "dwi.bvec", bvec[:, :9])
    with pytest.raises(InputError, match="9 columns for 10 volumes"):
        load_dwi(path)


def test_bval_count_mismatch(tmp_path):
    path = save_scan(tmp_path)
    (tmp_path / "dwi.bval").write_text("0 1000 1000\n")
    with pytest.raises(InputError, match="3 b-values for 10 volumes"):
        load_dwi(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [("0 1000 abc", "non-numeric"), ("0 nan 1000", "NaN"), ("", "empty"), ("0 -5 1000", "negative")],
)
def test_bad_bval_files(tmp_path, content, message):
    (tmp_path / "x.bval").write_text(content)
    with pytest.raises(InputError, match=message):
        read_bvals(tmp_path / "x.bval")


def test_bvec_accepts_n_by_3_and_rejects_other_shapes(tmp_path):
    (tmp_path / "a.bvec").write_text("1 0 0\n0 1 0\n0 0 1\n0 0 0\n")
    assert read_bvecs(tmp_path / "a.bvec").shape == (4, 3)
    (tmp_path / "b.bvec").write_text("1 0\n0 1\n")
    with pytest.raises(InputError, match="3 rows"):
        read_bvecs(tmp_path / "b.bvec")


def test_missing_bval_and_missing_image(tmp_path):
    path = save_scan(tmp_path)
    (tmp_path / "dwi.bval").unlink()
    with pytest.raises(InputError, match="no .bval file"):
        load_dwi(path)
    with pytest.raises(InputError, match="image not found"):
        load_dwi(tmp_path / "nothing.nii.gz")


def test_not_nifti_3d_zero_and_nan_images(tmp_path):
    (tmp_path / "text.nii.gz").write_bytes(gzip.compress(b"hello, not an image"))
    with pytest.raises(InputError, match="not a readable NIfTI"):
        load_dwi(tmp_path / "text.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), tmp_path / "three.nii.gz")
    with pytest.raises(InputError, match="must be 4D"):
        load_dwi(tmp_path / "three.nii.gz")
    for name, value in (("zero", 0.0), ("nan", np.nan)):
        nib.save(nib.Nifti1Image(np.full((4, 4, 4, 3), value, np.float32), np.eye(4)), tmp_path / f"{name}.nii.gz")
        write_gradients(np.array([0, 1000, 1000]), np.eye(3), tmp_path / name)
        with pytest.raises(InputError, match="every voxel"):
            load_dwi(tmp_path / f"{name}.nii.gz")


def test_truncated_nifti(tmp_path):
    path = save_scan(tmp_path)
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    with pytest.raises(InputError, match="truncated|cannot be read|not a readable"):
        load_dwi(path)


def test_broken_sidecar(tmp_path):
    path = save_scan(tmp_path)
    (tmp_path / "dwi.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_dwi(path)


def test_dicom_folder_converts_without_patient_identifiers(tmp_path):
    write_dicom_series(tmp_path / "dicom")
    images = convert_dicom_folder(tmp_path / "dicom", tmp_path / "nii")
    assert len(images) == 1
    scan = load_dwi(images[0])
    assert scan.shape[3] == 7
    assert sorted(set(scan.bvals.tolist())) == [0.0, 1000.0]
    sidecar_text = images[0].with_name(images[0].name.replace(".nii.gz", ".json")).read_text()
    assert "SECRET123" not in sidecar_text and "Doe" not in sidecar_text


def test_dicom_folder_without_diffusion_series(tmp_path):
    write_dicom_series(tmp_path / "t1", diffusion=False)
    with pytest.raises(InputError, match="no diffusion series"):
        convert_dicom_folder(tmp_path / "t1", tmp_path / "nii")


def test_folder_with_nothing_usable(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hi")
    with pytest.raises(InputError, match="no NIfTI"):
        resolve_inputs([tmp_path / "empty"], work_dir=tmp_path / "work")


def test_bids_dataset_runs_and_reverse_pe_pair(tmp_path):
    dwi = tmp_path / "bids" / "sub-01" / "dwi"
    dwi.mkdir(parents=True)
    (tmp_path / "bids" / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.8.0"}')
    save_scan(dwi, "sub-01_dir-AP_dwi", sidecar={"PhaseEncodingDirection": "j-"})
    save_scan(dwi, "sub-01_dir-PA_dwi", sidecar={"PhaseEncodingDirection": "j"})
    runs = find_dwi_runs(tmp_path / "bids")
    assert [r.entities["dir"] for r in runs] == ["AP", "PA"]
    resolved = resolve_inputs([tmp_path / "bids"], work_dir=tmp_path / "work")
    scans = [load_dwi(r.image) for r in resolved]
    assert reverse_pe_partners(scans) == {0: 1, 1: 0}


def test_concatenate_parts_and_refuse_other_grids(tmp_path):
    a, b = make_scan(shape=(8, 8, 6), n_dirs=6), make_scan(shape=(8, 8, 6), n_dirs=7)
    joined = concatenate([a, b])
    assert joined.n_volumes == a.n_volumes + b.n_volumes
    with pytest.raises(InputError, match="grid differs"):
        concatenate([a, make_scan(shape=(8, 8, 5), n_dirs=6)])


@pytest.mark.integration
def test_real_series_load(tmp_path):
    from tests.conftest import REAL_SERIES

    for path in REAL_SERIES.values():
        scan = load_dwi(path)
        assert scan.n_volumes == len(scan.bvals) == len(scan.bvecs)
