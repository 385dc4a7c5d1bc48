"""``lcid generate`` and ``lcid eval synth`` with the shipped PneumoniaMNIST model, offline."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from lcid.cli import app
from tests.conftest import SHARED_DATA


def test_generate_with_the_shipped_model(tmp_path):
    out = tmp_path / "samples"
    result = CliRunner().invoke(app, ["generate", "--model", "pneumoniamnist", "--condition", "pneumonia", "--n", "4",
                                      "--steps", "10", "--threads", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    pngs = sorted(p for p in out.glob("*.png") if p.name != "contact_sheet.png")
    assert len(pngs) == 4 and (out / "contact_sheet.png").is_file()
    record = json.loads((out / "generate.json").read_text())
    assert record["condition"] == "pneumonia" and record["n"] == 4
    images = np.stack([np.asarray(Image.open(p), dtype=float) for p in pngs])
    assert images.std() > 10  # not a blank or constant field
    assert not np.array_equal(images[0], images[1])  # four draws, not one copy


def test_generate_bad_condition_writes_nothing(tmp_path):
    out = tmp_path / "samples"
    result = CliRunner().invoke(app, ["generate", "--model", "pneumoniamnist", "--condition", "flu", "--n", "2", "--out", str(out)])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and "flu" in result.output
    assert not out.exists()


def test_eval_synth_unknown_sampler():
    result = CliRunner().invoke(app, ["eval", "synth", "--model", "pneumoniamnist", "--data", str(SHARED_DATA / "pneumoniamnist"),
                                      "--sampler", "euler"])
    assert result.exit_code == 2 and "unknown sampler" in result.output


@pytest.mark.integration
def test_eval_synth_json_on_real_data():
    result = CliRunner().invoke(app, ["eval", "synth", "--model", "pneumoniamnist", "--data", str(SHARED_DATA / "pneumoniamnist"),
                                      "--n", "32", "--steps", "10", "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)  # stdout holds the JSON object and nothing else
    for key in ("class_accuracy", "frechet", "frechet_real_vs_real", "frechet_noise", "ms_ssim_samples", "ms_ssim_real"):
        assert key in metrics
    assert metrics["frechet"] < 0.2 * metrics["frechet_noise"]
    assert metrics["class_accuracy"] >= 0.7
