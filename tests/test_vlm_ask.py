"""``lcid.vlm.inference.ask`` and ``lcid ask`` end to end with the shipped VQA-RAD model."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from lcid.cli import app
from lcid.errors import InputError
from lcid.vlm.inference import ask, load_model
from tests.conftest import SHARED_DATA

IMAGE = SHARED_DATA / "vqa_rad" / "images" / "synpic54610.jpg"  # head CT, first training question
runner = CliRunner()


def _check_result(result, *, polar=False):
    assert set(result) == {"answer", "problems"}
    assert isinstance(result["answer"], str) and result["answer"]
    probs = [p["probability"] for p in result["problems"]]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True) and all(0 <= p <= 1 for p in probs)
    if polar:
        assert result["answer"] in ("yes", "no")
    else:
        assert result["answer"] == result["problems"][0]["problem"]


@pytest.mark.integration
def test_ask_real_image_deterministic():
    # latency is measured by `lcid eval vqa` / docs/vqa.md, not by a timed test (it depends on machine load)
    result = ask(IMAGE, question="Are regions of the brain infarcted?", model="vqa-rad")
    _check_result(result, polar=True)
    again = ask(str(IMAGE), question="Are regions of the brain infarcted?", model="vqa-rad")
    assert again == result  # eval mode, deterministic


def test_ask_array_and_history():
    image = np.random.default_rng(0).random((64, 80)).astype(np.float32)
    result = ask(image, question="which organ is shown?", model="vqa-rad", history=[("is it a ct?", "yes")])
    _check_result(result)


def test_model_not_installed_is_clear():
    # the dwi model is shipped now: a name that is not installed must still fail clearly
    with pytest.raises(InputError, match="model no-such-model is not installed"):
        ask(np.zeros((8, 8)), model="no-such-model")


@pytest.mark.integration
def test_cli_ask_json():
    out = runner.invoke(app, ["ask", str(IMAGE), "--model", "vqa-rad", "-q", "Is this a CT?", "--json"])
    assert out.exit_code == 0, out.output
    _check_result(json.loads(out.stdout), polar=True)


def test_cli_ask_nifti(tmp_path):
    data = np.random.default_rng(1).random((24, 20, 6, 3)).astype(np.float32)
    path = tmp_path / "dwi.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    out = runner.invoke(app, ["ask", str(path), "--model", "vqa-rad", "-q", "Is this normal?", "--slice", "2",
                              "--volume", "1"])
    assert out.exit_code == 0, out.output
    assert out.stdout.strip()
    out = runner.invoke(app, ["ask", str(path), "--model", "vqa-rad", "--volume", "9"])
    assert out.exit_code == 2 and "--volume 9" in out.stderr


@pytest.mark.parametrize("kind", ["text", "empty", "huge", "missing"])
def test_cli_ask_bad_inputs(tmp_path, kind):
    path = tmp_path / "input.png"
    if kind == "text":
        path.write_text("not an image")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "huge":
        Image.new("L", (9000, 4)).save(path)
    out = runner.invoke(app, ["ask", str(path), "--model", "vqa-rad", "-q", "is this normal?"])
    assert out.exit_code == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")


def test_model_push_to_folder(tmp_path):
    out = runner.invoke(app, ["model", "push", "vqa-rad", "--to-folder", str(tmp_path / "copy")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "copy" / "ensemble.json").is_file() and (tmp_path / "copy" / "README.md").is_file()
    for a, b in zip(load_model("vqa-rad").members, load_model(tmp_path / "copy").members, strict=True):
        a, b = a.state_dict(), b.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    member = tmp_path / "copy" / "member-0"
    out = runner.invoke(app, ["model", "push", str(member), "--to-folder", str(tmp_path / "single")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "single" / "training.json").is_file()
    a, b = load_model(member).state_dict(), load_model(tmp_path / "single").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    out = runner.invoke(app, ["model", "push", "vqa-rad"])
    assert out.exit_code == 2 and "REPO" in out.stderr
