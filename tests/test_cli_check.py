"""``lcid check`` end to end: outputs, exit codes, bad input, real series."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from lcid.cli import app
from lcid.dwi.vocabulary import PROBLEM_IDS, SEVERITIES
from lcid.io.gradient_files import write_gradients
from tests.conftest import REAL_SERIES, make_scan

runner = CliRunner()


def write_scan(folder: Path, name: str = "dwi") -> Path:
    scan = make_scan(shape=(24, 24, 16), n_dirs=12)
    path = folder / f"{name}.nii.gz"
    nib.save(nib.Nifti1Image(scan.data, scan.affine), path)
    write_gradients(scan.bvals, scan.bvecs, folder / name)
    return path


def assert_findings_contract(doc: dict) -> None:
    assert set(doc) >= {"lcid_version", "input", "findings"}
    assert [f["problem"] for f in doc["findings"]] == list(PROBLEM_IDS)
    for f in doc["findings"]:
        assert f["severity"] in SEVERITIES
        assert f["detected"] == (f["severity"] != "none")
        assert 0.0 <= f["confidence"] <= 1.0
        assert {"volumes", "slices"} <= set(f["where"])
        assert f["explanation"]
    assert {"shape", "voxel_size_mm", "shells", "orientation"} <= set(doc["input"])


def test_check_writes_findings_and_report(tmp_path):
    image = write_scan(tmp_path)
    result = runner.invoke(app, ["check", str(image), "--out", str(tmp_path / "qc")])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "qc" / "findings.json").read_text())
    assert_findings_contract(doc)
    html = (tmp_path / "qc" / "report.html").read_text()
    assert "<html" in html.lower() and "data:image/png;base64" in html
    assert not list((tmp_path / "qc").glob(".lcid-tmp-*")), "temporary folder left behind"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lcid", *args], capture_output=True, text=True, timeout=300, check=False)


def test_bad_bvec_exit_2_one_line_nothing_written(tmp_path):
    image = write_scan(tmp_path)
    bvec = np.loadtxt(tmp_path / "dwi.bvec")
    np.savetxt(tmp_path / "dwi.bvec", bvec[:, :-1])
    out = tmp_path / "qc"
    proc = run_cli("check", str(image), "--out", str(out))
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "13 columns for 14 volumes" in lines[0]
    assert not out.exists(), "nothing may be written for unusable input"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.nii.gz", "not found"),
        (lambda d: (d / "x.txt").write_text("hello") and d / "x.txt", "not a readable NIfTI"),
    ],
)
def test_missing_or_non_nifti_input(tmp_path, make, message):
    result = runner.invoke(app, ["check", str(make(tmp_path)), "--out", str(tmp_path / "qc")])
    assert result.exit_code == 2
    assert message in result.output


def test_unwritable_output_folder(tmp_path):
    image = write_scan(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = runner.invoke(app, ["check", str(image), "--out", str(blocker / "qc")])
    assert result.exit_code == 2
    assert "cannot write to output folder" in result.output


def test_api_check_returns_every_problem(tmp_path):
    import lcid

    findings = lcid.check(write_scan(tmp_path))
    assert [f.problem for f in findings.findings] == list(PROBLEM_IDS)
    assert all(f.explanation for f in findings.findings)


@pytest.mark.integration
def test_real_siemens_ap_pa_pair_group_table(tmp_path):
    out = tmp_path / "qc"
    result = runner.invoke(app, ["check", str(REAL_SERIES["siemens_ap"]), str(REAL_SERIES["siemens_pa"]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    tsv = (out / "group.tsv").read_text().splitlines()
    assert len(tsv) == 3 and tsv[0].startswith("run\t")
    for label in ("DWI_dir80_AP", "DWI_dir80_PA"):
        doc = json.loads((out / label / "findings.json").read_text())
        assert_findings_contract(doc)
        assert doc["input"]["reverse_pe_pair"] is True
        assert "topup" in json.dumps(doc).lower()


@pytest.mark.integration
@pytest.mark.parametrize("name", ["philips_elition", "philips_achieva", "phantom"])
def test_real_series_check_clean(tmp_path, name):
    out = tmp_path / name
    result = runner.invoke(app, ["check", str(REAL_SERIES[name]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "findings.json").read_text())
    assert_findings_contract(doc)
    by_id = {f["problem"]: f for f in doc["findings"]}
    for problem in ("motion", "eddy_current", "missing_slices"):
        assert SEVERITIES.index(by_id[problem]["severity"]) <= 1, (problem, by_id[problem]["metrics"])
    if name == "phantom":
        assert doc["input"]["object"] == "phantom"
        assert by_id["fov_cutoff"]["applicable"] is False
