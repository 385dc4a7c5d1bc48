"""Ensembles of VQA models: combining, building, loading, asking, publishing."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lcid.cli import app
from lcid.errors import InputError
from lcid.vlm.config import VLMConfig
from lcid.vlm.ensemble import ENSEMBLE_FILE, VLMEnsemble, build_ensemble, combine, predict_images
from lcid.vlm.inference import ask, load_model, resolve_model
from lcid.vlm.model import FlamingoVLM
from lcid.vlm.predict import Prediction, final_answer
from lcid.vlm.tokenizer import VLMTokenizer
from tests.conftest import SHARED_DATA

TEXTS = ["question: is there a mass in the brain? answer: yes", "question: which lung? answer: left lung",
         "question: is this a ct scan? answer: no"] * 5
TINY = VLMConfig(image_size=32, cnn_channels=(4, 8), dim=32, n_layers=2, n_heads=2, n_latents=4, max_length=32,
                 dropout=0.0, head_labels=("yes", "no", "left lung"))
runner = CliRunner()


@pytest.fixture(scope="module")
def tokenizer():
    return VLMTokenizer.train(TEXTS, vocab_size=300)


def _tiny(tokenizer, seed: int, **changes) -> FlamingoVLM:
    torch.manual_seed(seed)
    return FlamingoVLM.build(replace(TINY, **changes), tokenizer).eval()


def _save(model: FlamingoVLM, folder) -> str:
    model.save_pretrained(folder, config=model.cfg.to_dict())
    return str(folder)


def test_combine_averages_probabilities_and_keeps_first_text():
    a = Prediction(generated="yes", head=(("yes", 0.9), ("no", 0.1)))
    b = Prediction(generated="no", head=(("no", 0.7), ("yes", 0.3)))
    both = combine([a, b])
    assert both.generated == "yes"
    assert [label for label, _ in both.head] == ["yes", "no"]
    assert [p for _, p in both.head] == pytest.approx([0.6, 0.4])


def test_members_at_their_own_image_size_average_to_the_mean(tokenizer, tmp_path):
    small, large = _tiny(tokenizer, 0), _tiny(tokenizer, 1, image_size=48)
    images = [np.random.default_rng(0).random((40, 56)).astype(np.float32)]
    prompts = ["question: is there a mass in the brain? answer:"]
    ensemble = VLMEnsemble([small, large])
    got = dict(predict_images(ensemble, images, prompts)[0].head)
    each = [dict(predict_images(m, images, prompts)[0].head) for m in (small, large)]
    assert got == pytest.approx({k: (each[0][k] + each[1][k]) / 2 for k in got})
    assert sum(got.values()) == pytest.approx(1.0, abs=1e-5)
    # a model with itself answers exactly as the model alone
    twice = dict(VLMEnsemble([small, small]).predict_images(images, prompts)[0].head)
    assert twice == pytest.approx(each[0])


def test_build_load_round_trip(tokenizer, tmp_path):
    members = [_save(_tiny(tokenizer, seed), tmp_path / f"m{seed}") for seed in (0, 1)]
    folder = build_ensemble(members, tmp_path / "ens")
    record = json.loads((folder / ENSEMBLE_FILE).read_text())
    assert record["members"] == ["member-0", "member-1"] and record["sources"] == members
    loaded = VLMEnsemble.from_pretrained(folder)
    for original, member in zip(members, loaded.members, strict=True):
        a, b = FlamingoVLM.from_pretrained(original).state_dict(), member.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert resolve_model(folder) == folder.resolve()
    assert isinstance(load_model(folder), VLMEnsemble)


def test_mismatched_or_incomplete_members_are_refused(tokenizer, tmp_path):
    first = _save(_tiny(tokenizer, 0), tmp_path / "a")
    other = _save(_tiny(tokenizer, 1, head_labels=("yes", "no")), tmp_path / "b")
    multilabel = _save(_tiny(tokenizer, 2, head="multilabel"), tmp_path / "c")
    with pytest.raises(InputError, match="other labels"):
        build_ensemble([first, other], tmp_path / "x")
    with pytest.raises(InputError, match="multiclass"):
        build_ensemble([first, multilabel], tmp_path / "x")
    with pytest.raises(InputError, match="at least two"):
        build_ensemble([first], tmp_path / "x")
    with pytest.raises(InputError, match="not a saved model"):
        build_ensemble([first, str(tmp_path)], tmp_path / "x")
    assert not (tmp_path / "x").exists()  # nothing half-written
    folder = build_ensemble([first, first], tmp_path / "ens")
    (folder / "member-1" / "config.json").unlink()
    with pytest.raises(InputError, match="member-1"):
        VLMEnsemble.from_pretrained(folder)
    (folder / ENSEMBLE_FILE).write_text("{}")
    with pytest.raises(InputError, match="no list of member"):
        VLMEnsemble.from_pretrained(folder)


def test_multilabel_ensemble_decides_at_its_own_thresholds(tokenizer, tmp_path):
    from lcid.vlm.model import THRESHOLDS_FILE, write_thresholds
    from lcid.vlm.predict import detected

    labels = ("motion", "noise", "spikes")
    a = _tiny(tokenizer, 0, head="multilabel", head_labels=labels)
    b = _tiny(tokenizer, 1, head="multilabel", head_labels=labels, fft_channel=True)
    a.set_thresholds({"motion": 0.05})  # a member's own thresholds are not the ensemble's
    folder = build_ensemble([_save(a, tmp_path / "a"), _save(b, tmp_path / "b")], tmp_path / "ens")
    ensemble = VLMEnsemble.from_pretrained(folder)
    assert ensemble.thresholds == {} and ensemble.threshold("motion") == 0.5
    images = [np.random.default_rng(1).random((30, 30)).astype(np.float32)]
    prompts = ["question: what is wrong? answer:"]
    got = dict(ensemble.predict_images(images, prompts, max_new_tokens=2)[0].head)
    each = [dict(predict_images(m, images, prompts, max_new_tokens=0)[0].head) for m in ensemble.members]
    assert set(got) == set(labels)
    assert all(got[k] == pytest.approx((each[0][k] + each[1][k]) / 2, abs=1e-6) for k in labels)
    low = min(got.values())
    ensemble.set_thresholds({label: max(0.01, round(low - 0.005, 4)) for label in labels}, {"source": "unit test"})
    write_thresholds(folder, ensemble.thresholds, ensemble.thresholds_record)
    loaded = VLMEnsemble.from_pretrained(folder)
    assert loaded.thresholds == ensemble.thresholds and loaded.thresholds_record == {"source": "unit test"}
    prediction = loaded.predict_images(images, prompts, max_new_tokens=0)[0]
    assert set(detected(loaded, prediction)) == set(labels)
    with pytest.raises(InputError, match="labels the head does not have"):
        loaded.set_thresholds({"ghosting": 0.3})
    (folder / THRESHOLDS_FILE).write_text("[1]")
    with pytest.raises(InputError, match="not a thresholds file"):
        VLMEnsemble.from_pretrained(folder)


@pytest.mark.integration
def test_cli_ensemble_of_a_shipped_member_asks_and_publishes(tmp_path):
    shipped = str(resolve_model("vqa-rad") / "member-0")
    out = runner.invoke(app, ["model", "ensemble", shipped, shipped, "--out", str(tmp_path / "ens")])
    assert out.exit_code == 0, out.output
    card = (tmp_path / "ens" / "README.md").read_text()
    assert "ensemble of 2" in card and "## member-1" in card and "command:" in card and "lcid model ensemble" in card
    image = SHARED_DATA / "vqa_rad" / "images" / "synpic54610.jpg"
    alone = ask(image, question="is this a ct scan?", model=shipped)
    together = ask(image, question="is this a ct scan?", model=str(tmp_path / "ens"))
    assert together["answer"] == alone["answer"] in ("yes", "no")
    assert [p["probability"] for p in together["problems"]] == pytest.approx(
        [p["probability"] for p in alone["problems"]], abs=1e-4)
    ensemble = load_model("vqa-rad")  # the shipped VQA-RAD model is an ensemble
    assert isinstance(ensemble, VLMEnsemble) and len(ensemble.members) == 3
    prediction = predict_images(ensemble, [np.zeros((64, 64), np.float32)], ["question: which lung? answer:"])[0]
    assert final_answer(ensemble, prediction, question="which lung?") == prediction.head[0][0]
    out = runner.invoke(app, ["model", "push", str(tmp_path / "ens"), "--to-folder", str(tmp_path / "copy")])
    assert out.exit_code == 0, out.output
    assert isinstance(load_model(tmp_path / "copy"), VLMEnsemble)
    out = runner.invoke(app, ["model", "ensemble", shipped, str(tmp_path), "--out", str(tmp_path / "bad")])
    assert out.exit_code == 2 and out.stderr.count("\n") == 1 and "not a saved model" in out.stderr
