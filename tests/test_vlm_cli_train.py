"""``lcid train vqa`` and ``lcid eval vqa`` end to end on a tiny VQA-RAD-format folder."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from lcid.cli import app

RECIPE = """
model: {image_size: 32, cnn_channels: [4, 8], dim: 32, n_layers: 1, n_heads: 2, n_latents: 2, max_length: 40}
train: {steps: 4, batch_size: 4, lr: 0.001, seed: 3, checkpoint_every: 2, log_every: 2}
vocab_size: 300
schedule: cosine
warmup_steps: 2
"""


def _data(folder):
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.jpg"):
        Image.fromarray((rng.random((40, 48)) * 255).astype(np.uint8)).save(folder / "images" / name)
    items = [
        {"qid": i, "image_name": name, "question": q, "answer": a, "answer_type": t, "question_type": "PRES",
         "image_organ": "HEAD"}
        for i, (name, q, a, t) in enumerate([
            ("a.jpg", "Is there a mass?", "Yes", "CLOSED"), ("b.jpg", "Is there a mass?", "No", "CLOSED"),
            ("a.jpg", "Where is the mass?", "Left lobe", "OPEN"), ("b.jpg", "What modality?", "CT", "OPEN"),
            ("a.jpg", "Is this normal?", "no", "CLOSED"), ("b.jpg", "Is this normal?", "yes", "CLOSED"),
        ])
    ]
    (folder / "trainset.json").write_text(json.dumps(items))
    (folder / "testset.json").write_text(json.dumps(items[:3]))


def test_train_then_eval(tmp_path):
    runner = CliRunner()
    _data(tmp_path / "data")
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    out = runner.invoke(app, ["train", "vqa", "--data", "vqa-rad", str(tmp_path / "data"), "--config",
                              str(tmp_path / "recipe.yaml"), "--out", str(tmp_path / "run")])
    assert out.exit_code == 0, out.output
    model = tmp_path / "run" / "model"
    record = json.loads((model / "training.json").read_text())
    assert record["seed"] == 3 and record["data"]["questions"] == 6 and "train vqa" in record["command"]
    assert "## Training" in (model / "README.md").read_text()
    out = runner.invoke(app, ["eval", "vqa", "--model", str(model), "--data", str(tmp_path / "data"), "--json",
                              "--no-embeddings", "--record"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    for key in ("closed_accuracy", "open_accuracy", "overall_accuracy", "bleu1", "majority_baseline_overall"):
        assert 0.0 <= result[key] <= 1.0
    assert result["n"] == 3 and (model / "evaluation.json").is_file()
    assert "## Evaluation" in (model / "README.md").read_text()
    # an ensemble of the model with itself scores exactly as the model, and --record writes the ensemble's card
    out = runner.invoke(app, ["model", "ensemble", str(model), str(model), "--out", str(tmp_path / "ens")])
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["eval", "vqa", "--model", str(tmp_path / "ens"), "--data", str(tmp_path / "data"), "--json",
                              "--no-embeddings", "--record"])
    assert out.exit_code == 0, out.output
    together = json.loads(out.stdout)
    assert {k: together[k] for k in ("closed_accuracy", "open_accuracy", "bleu1")} == \
        {k: result[k] for k in ("closed_accuracy", "open_accuracy", "bleu1")}
    card = (tmp_path / "ens" / "README.md").read_text()
    assert "ensemble of 2" in card and "## Evaluation" in card and "## member-1" in card


def test_train_bad_recipe(tmp_path):
    (tmp_path / "recipe.yaml").write_text("modle: {}\n")
    out = CliRunner().invoke(app, ["train", "vqa", str(tmp_path), "--config", str(tmp_path / "recipe.yaml")])
    assert out.exit_code == 2 and "unknown keys" in out.stderr
