"""``lcid ask`` end to end with the shipped ``dwi`` model on real slices from ../shared/data."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lcid.cli import app
from lcid.cli.vlm import acquisition_text
from lcid.dwi.vocabulary import PROBLEM_IDS
from lcid.vlm.render import plane_axis, render_slice, save_png
from tests.conftest import REAL_SERIES

pytestmark = pytest.mark.integration
ACHIEVA = REAL_SERIES["philips_achieva"]


@pytest.fixture(scope="module")
def real_slice(tmp_path_factory):
    from lcid.io.nifti import load_dwi

    scan = load_dwi(ACHIEVA)
    axis = plane_axis(scan.affine, "axial")
    path = tmp_path_factory.mktemp("ask") / "achieva_axial.png"
    save_png(render_slice(scan.data[..., 1], scan.affine, plane="axial", index=scan.shape[axis] // 2), path)
    return path


def ask_json(*args: str) -> dict:
    result = CliRunner().invoke(app, ["ask", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_ask_a_png_with_the_default_model(real_slice):
    out = ask_json(str(real_slice))
    assert len(out["answer"].split()) >= 3
    assert {p["problem"] for p in out["problems"]} == set(PROBLEM_IDS)
    assert all(0.0 <= p["probability"] <= 1.0 for p in out["problems"])
    # each problem's decision threshold (saved with the model, 0.5 where none was chosen) decides it
    assert all(0.0 < p["threshold"] < 1.0 for p in out["problems"])
    assert out["detected"] == [p["problem"] for p in out["problems"] if p["probability"] >= p["threshold"]]
    assert all(p["detected"] == (p["problem"] in out["detected"]) for p in out["problems"])


def test_plain_output_lists_the_problems_over_threshold(real_slice):
    result = CliRunner().invoke(app, ["ask", str(real_slice)])
    assert result.exit_code == 0, result.output
    assert "[problems over the model's thresholds: " in result.output.splitlines()[-1]


def test_bval_bvec_become_the_acquisition_text(real_slice):
    bval, bvec = ACHIEVA.with_name("WIP_dti_ax_601.bval"), ACHIEVA.with_name("WIP_dti_ax_601.bvec")
    assert acquisition_text(bval, bvec) == "15 directions, b = 0 to 2000"
    out = ask_json(str(real_slice), "--bval", str(bval), "--bvec", str(bvec), "--question", "Is this scan OK for tractography?")
    few = {p["problem"]: p["probability"] for p in out["problems"]}["few_directions"]
    assert few > 0.5  # 15 directions: stated by the text, below the 30 of Jones 2004


def test_a_4d_nifti_with_findings_grounds_the_answer(tmp_path):
    findings = tmp_path / "findings.json"
    findings.write_text(json.dumps({"findings": [
        {"problem": "motion", "detected": True, "severity": "severe"},
        {"problem": "noise", "detected": False, "severity": "none"},
    ]}))
    out = ask_json(str(ACHIEVA), "--volume", "1", "--slice", "20", "--findings", str(findings))
    probs = {p["problem"]: p["probability"] for p in out["problems"]}
    assert probs["motion"] > 0.5
    assert "subject motion" in out["answer"].lower()


def test_a_broken_findings_file_is_refused(real_slice, tmp_path):
    bad = tmp_path / "findings.json"
    bad.write_text("{not json")
    result = CliRunner().invoke(app, ["ask", str(real_slice), "--findings", str(bad)])
    assert result.exit_code == 2 and "cannot read findings" in result.output
