"""Training and evaluation of a DWI model on a tiny simulated set (shared loop, CLI, scores)."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from typer.testing import CliRunner

from lcid.cli import app
from lcid.vlm.dwi.build import BuildSettings, build, read_manifest
from lcid.vlm.dwi.evaluate import evaluate_dwi, problem_scores
from lcid.vlm.dwi.visibility import IMAGE_VISIBLE
from lcid.vlm.inference import load_model

TINY = {
    "model": {"image_size": 32, "cnn_channels": [4, 8], "dim": 32, "n_layers": 1, "n_heads": 2, "n_latents": 2,
              "max_length": 80, "answer_tokens": 6, "dropout": 0.0, "fft_channel": True, "background_window": 0.1},
    "train": {"steps": 2, "batch_size": 4, "seed": 0, "checkpoint_every": 2, "log_every": 1},
    "vocab_size": 300,
    "augment": {"max_scale": 0.1},  # the shipped recipe's picture changes, exercised on a tiny run
    "scanner_augment": {"gamma": [0.8, 1.25], "max_noise": 0.005, "noise_floor": 0.02},
    "holdout_fraction": 0.4,  # scans kept out of fitting, for the decision thresholds
}


def test_problem_scores_known_values():
    truth = [["noise"], ["noise", "spikes"], [], ["spikes"]]
    predicted = [["noise"], ["spikes"], ["noise"], []]
    scores = problem_scores(truth, predicted, ["noise", "spikes", "ghosting"])
    assert scores["noise"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert scores["spikes"]["precision"] == 1.0 and scores["spikes"]["recall"] == 0.5
    assert scores["ghosting"]["support"] == 0
    assert scores["macro_f1"] == pytest.approx((0.5 + 2 / 3) / 2)  # ghosting has no true case: left out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("dwi-eval")
    data = build(root / "data", settings=BuildSettings(n=20, seed=3, sources=("phantom_0", "phantom_2"),
                                                        views_per_scan=4, phantom_shape=(24, 24, 16)),
                 cache=root / "cache", progress=False)
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    result = CliRunner().invoke(app, ["train", "vlm", "--config", str(config), "--data", str(data),
                                      "--out", str(root / "run")])
    assert result.exit_code == 0, result.output
    return data, root / "run" / "model"


def test_training_records_the_recipe_and_data(trained):
    data, model_dir = trained
    record = json.loads((model_dir / "training.json").read_text())
    assert record["command"].startswith("lcid ")
    assert record["data"]["build"]["seed"] == 3 and record["seed"] == 0
    assert record["settings"]["scanner_augment"] == TINY["scanner_augment"]
    held = record["data"]["validation_ids"]
    assert held and record["data"]["questions"] + len(held) == len(read_manifest(data, split="train"))
    thresholds = json.loads((model_dir / "thresholds.json").read_text())
    assert thresholds["record"]["questions"] == len(held) and "kept out of fitting" in thresholds["record"]["source"]
    assert load_model(model_dir).thresholds == thresholds["thresholds"]
    cfg = load_model(model_dir).cfg
    assert cfg.head == "multilabel" and cfg.answer_tokens == 6 and cfg.background_window == 0.1
    card = (model_dir / "README.md").read_text()
    assert f"lcid data build-vlm --out {data} --n 20 --seed 3" in card and "philips_achieva" in card
    assert "dark window 0-0.1" in card


def test_holdout_source_must_name_a_training_source(trained, tmp_path):
    data, _ = trained
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    for source, message in (("philips_elition", "holdout_sources philips_elition not in the training split"),
                            ("phantom_0", "leaves no training rows")):
        result = CliRunner().invoke(app, ["train", "vlm", "--config", str(config), "--data", str(data),
                                          "--out", str(tmp_path / "run"), "--holdout-source", source])
        assert result.exit_code != 0 and message in result.output, result.output
        assert not (tmp_path / "run" / "model").exists()


def test_evaluate_gives_bounded_scores(trained):
    data, model_dir = trained
    rows = read_manifest(data, split="test")
    result = evaluate_dwi(load_model(model_dir), rows, embeddings=False, latency_samples=2, acq_effect_images=4)
    assert result["n"] == len(rows) > 0
    for source in ("head", "text"):
        scores = result[source]["image_visible"]
        assert set(IMAGE_VISIBLE) <= set(scores)
        assert all(0.0 <= scores[p]["f1"] <= 1.0 for p in IMAGE_VISIBLE)
        assert math.isnan(scores["macro_f1"]) or 0.0 <= scores["macro_f1"] <= 1.0
    assert 0.0 <= result["bleu1"] <= 1.0
    assert result["latency_s"]["samples"] == 2 and result["latency_s"]["median"] > 0
    assert len(result["examples"]) >= 1


def test_eval_command_json(trained):
    data, model_dir = trained
    result = CliRunner().invoke(app, ["eval", "vlm", "--model", str(model_dir), "--data", str(data), "--json",
                                      "--no-embeddings", "--limit", "6", "--threads", "1"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output[result.output.index("{"):])
    assert scores["n"] == 6 and "acquisition_effect" in scores
    assert set(scores["head_calibrated"]["image_visible"]) == set(scores["head"]["image_visible"])
    assert scores["thresholds"] == {p: load_model(model_dir).threshold(p) for p in scores["thresholds"]}
    table = CliRunner().invoke(app, ["eval", "vlm", "--model", str(model_dir), "--data", str(data),
                                     "--no-embeddings", "--limit", "4", "--threads", "1"])
    assert table.exit_code == 0 and "model's thresholds" in table.output


def test_calibrate_command_uses_the_scans_kept_out(trained, tmp_path):
    import shutil

    data, model_dir = trained
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    (copy / "thresholds.json").unlink()
    result = CliRunner().invoke(app, ["model", "calibrate", str(copy), "--data", str(data)])
    assert result.exit_code == 0, result.output
    saved = json.loads((copy / "thresholds.json").read_text())
    assert saved == json.loads((model_dir / "thresholds.json").read_text())
    refused = CliRunner().invoke(app, ["model", "calibrate", str(copy), "--data", str(data), "--split", "test"])
    assert refused.exit_code == 2 and "test split" in refused.output


def test_eval_command_refuses_a_vqa_model(tmp_path):
    result = CliRunner().invoke(app, ["eval", "vlm", "--model", "vqa-rad", "--data", str(tmp_path)])
    assert result.exit_code == 2 and "multi-label" in result.output


def test_ensemble_of_dwi_models_calibrates_evaluates_and_answers(trained, tmp_path):
    """Two seeds averaged: thresholds for the mean probability on the scans no member was fitted on."""
    import numpy as np

    from lcid.vlm.dwi.calibrate import choose_thresholds
    from lcid.vlm.dwi.evaluate import predict_rows
    from lcid.vlm.inference import ask

    data, model_dir = trained
    config = tmp_path / "seed1.yaml"
    config.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "seed": 1}}))
    result = CliRunner().invoke(app, ["train", "vlm", "--config", str(config), "--data", str(data),
                                      "--out", str(tmp_path / "run1")])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "ens"
    result = CliRunner().invoke(app, ["model", "ensemble", str(model_dir), str(tmp_path / "run1" / "model"),
                                      "--out", str(folder)])
    assert result.exit_code == 0, result.output
    assert "problem ids" in (folder / "README.md").read_text()
    result = CliRunner().invoke(app, ["model", "calibrate", str(folder), "--data", str(data)])
    assert result.exit_code == 0, result.output
    saved = json.loads((folder / "thresholds.json").read_text())
    kept_out = set(json.loads((model_dir / "training.json").read_text())["data"]["validation_ids"])
    rows = [r for r in read_manifest(data, split="train") if r["id"] in kept_out]
    assert saved["record"]["questions"] == len(rows)
    ensemble = load_model(folder)
    labels = list(ensemble.cfg.head_labels)
    mean = np.array([[dict(p.head)[label] for label in labels] for p in predict_rows(ensemble, rows, generate=False)])
    truth = np.array([[label in r["labels"] for label in labels] for r in rows])
    expected = choose_thresholds(mean, truth, labels)
    assert saved["thresholds"] == {label: c["threshold"] for label, c in expected.items()}
    result = CliRunner().invoke(app, ["eval", "vlm", "--model", str(folder), "--data", str(data), "--json",
                                      "--no-embeddings", "--limit", "4", "--threads", "1", "--record"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output[result.output.index("{"):])
    assert scores["thresholds"] == {p: ensemble.threshold(p) for p in labels}
    card = (folder / "README.md").read_text()
    assert "## Evaluation (held-out scanner and phantom)" in card and "member-1" in card
    answer = ask(read_manifest(data, split="test")[0]["image"], question="what is wrong?", model=str(folder))
    assert answer["answer"] and all(p["threshold"] == ensemble.threshold(p["problem"]) for p in answer["problems"])

    # the slice-statistics classifier: fitted on the members' training pictures, thresholds chosen again
    from lcid.vlm.dwi.card import write_dwi_card
    from lcid.vlm.dwi.probe import picture_labels
    from lcid.vlm.dwi.statistics_model import fit_ensemble_statistics

    fitted_rows = [r for r in read_manifest(data, split="train") if r["id"] not in kept_out]
    shown = picture_labels(fitted_rows)
    result = CliRunner().invoke(app, ["model", "statistics", str(folder), "--data", str(data)])
    assert result.exit_code == 2 and f"at least 10 of the {len(shown)} training pictures" in result.output
    assert not (folder / "slice_statistics.json").exists()
    learnable = [p for p in IMAGE_VISIBLE if 1 <= sum(p in v for v in shown.values()) < len(shown)]
    assert learnable  # the tiny set has some; the real one all eight
    model, _ = fit_ensemble_statistics(folder, data_dir=data, command="unit test", min_pictures=1)
    write_dwi_card(folder)
    record = json.loads((folder / "slice_statistics.json").read_text())
    assert list(model.problems) == record["problems"] == learnable and record["data"]["pictures"] == len(shown)
    combined = load_model(folder)
    with_statistics = predict_rows(combined, rows, generate=False)
    assert all(dict(a.head)[p] >= dict(b.head)[p] - 1e-6  # noisy-OR never lowers the members' mean
               for a, b in zip(with_statistics, predict_rows(ensemble, rows, generate=False), strict=True)
               for p in labels)
    assert json.loads((folder / "thresholds.json").read_text())["thresholds"] == combined.thresholds
    assert "slice statistics" in (folder / "README.md").read_text()
    result = CliRunner().invoke(app, ["model", "statistics", str(model_dir), "--data", str(data)])
    assert result.exit_code == 2 and "not an ensemble folder" in result.output


def test_dwi_training_refuses_init_from(tmp_path):
    from lcid.errors import InputError
    from lcid.vlm.dwi.training import train_dwi
    from lcid.vlm.training import VQATrainSettings

    with pytest.raises(InputError, match="init_from is a key of VQA recipes"):
        train_dwi(tmp_path, settings=VQATrainSettings(init_from="dwi"), out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_shipped_dwi_recipes_match_the_members_records():
    """configs/vlm/dwi*.yaml retrain the shipped ensemble's members: same settings as recorded."""
    from pathlib import Path

    from lcid.vlm.inference import resolve_model
    from lcid.vlm.training import VQATrainSettings

    root = Path(__file__).resolve().parents[1]
    folder = resolve_model("dwi")
    for i, name in enumerate(["dwi", "dwi_seed1", "dwi_bgwindow", "dwi_bgwindow_seed1"]):
        recorded = json.loads((folder / f"member-{i}" / "training.json").read_text())["settings"]
        recipe = json.loads(json.dumps(VQATrainSettings.from_yaml(root / "configs" / "vlm" / f"{name}.yaml").__dict__))
        assert {k: v for k, v in recipe.items() if k in recorded} == recorded, name
