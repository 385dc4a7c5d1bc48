"""Starting a VQA model from another model's weights (``init_from``)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from typer.testing import CliRunner

from lcid.cli import app
from lcid.errors import InputError
from lcid.vlm.config import VLMConfig
from lcid.vlm.model import FlamingoVLM
from lcid.vlm.tokenizer import VLMTokenizer
from lcid.vlm.transfer import inherit_architecture, load_source, same_tokenizer, started_from, transfer_weights
from tests.test_vlm_cli_train import _data

SOURCE = VLMConfig(image_size=32, cnn_channels=(4, 8), dim=32, n_layers=2, n_heads=2, n_latents=4, max_length=40,
                   dropout=0.0, head="multilabel", head_labels=("motion", "noise"), fft_channel=True)
runner = CliRunner()


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory):
    """A saved multi-label (DWI-like) model with its own tokenizer."""
    tokenizer = VLMTokenizer.train(["question: what is wrong? answer: motion in the slice"] * 5, vocab_size=260)
    torch.manual_seed(0)
    model = FlamingoVLM.build(SOURCE, tokenizer)
    folder = tmp_path_factory.mktemp("source")
    model.save_pretrained(folder, config=model.cfg.to_dict())
    return folder


def test_architecture_comes_from_the_source_and_conflicts_are_named():
    section = inherit_architecture({"image_size": 48, "dropout": 0.2, "dim": 32}, SOURCE, name="dwi")
    assert section["image_size"] == 48 and section["dropout"] == 0.2  # the recipe's own keys stay
    assert section["fft_channel"] is True and section["cnn_channels"] == (4, 8) and section["n_latents"] == 4
    with pytest.raises(InputError, match="init_from dwi: the recipe sets dim = 64 but that model has 32"):
        inherit_architecture({"dim": 64}, SOURCE, name="dwi")


def test_weights_copied_except_vocabulary_and_labels(source_dir):
    source, _ = load_source(source_dir)
    tokenizer = VLMTokenizer.train(["question: is there a mass? answer: yes", "answer: no"] * 5, vocab_size=270)
    assert not same_tokenizer(tokenizer, source.tokenizer) and same_tokenizer(source.tokenizer, source.tokenizer)
    cfg = VLMConfig.from_dict({**inherit_architecture({"image_size": 48}, source.cfg, name="src"),
                               "head": "multiclass", "head_labels": ["yes", "no", "left"]})
    torch.manual_seed(1)
    model, record = started_from(source, cfg, tokenizer)
    new, old = model.state_dict(), source.state_dict()
    copied = [k for k in new if k in old and k not in record["left_out"] + record["shape_differs"]]
    assert record["tensors"] == len(copied) and all(torch.equal(new[k], old[k]) for k in copied)
    assert record["parameters"] == sum(new[k].numel() for k in copied)
    assert any(k.startswith("vision.features") for k in copied) and any(k.startswith("resampler.") for k in copied)
    assert any(".xattn." in k or "cross" in k for k in copied)
    # the position table is sized by the image (6 x 6 tokens at 48 px against 4 x 4): not copied, said so
    assert "vision.position" in record["shape_differs"]
    assert not torch.equal(new["lm.transformer.wte.weight"], old["lm.transformer.wte.weight"])
    assert "lm.transformer.wte.weight" in record["left_out"] and any(k.startswith("head.") for k in record["left_out"])
    assert model.cfg.vocab_size == tokenizer.vocab_size and model.cfg.head_labels == ("yes", "no", "left")


def test_shared_tokenizer_keeps_the_embeddings(source_dir):
    source, _ = load_source(source_dir)
    model, record = started_from(source, replace(source.cfg, head="multiclass", head_labels=("yes", "no")),
                                 source.tokenizer)
    assert torch.equal(model.state_dict()["lm.transformer.wte.weight"], source.state_dict()["lm.transformer.wte.weight"])
    assert record["shape_differs"] == []


def test_nothing_in_common_is_an_error(source_dir):
    with pytest.raises(InputError, match="share no weights"):
        transfer_weights(torch.nn.Linear(2, 2), torch.nn.Linear(3, 3), share_vocabulary=True)


def test_bad_sources_are_named(tmp_path):
    with pytest.raises(InputError, match="not installed"):
        load_source(tmp_path / "nothing")
    model, folder = load_source("vqa-rad")  # an ensemble: its first member
    assert folder.name == "member-0" and model.cfg.head == "multiclass"


def test_train_vqa_from_a_saved_model(source_dir, tmp_path):
    _data(tmp_path / "data")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(json.dumps({
        "model": {"image_size": 32, "max_length": 40},
        "train": {"steps": 2, "batch_size": 2, "lr": 0.001, "seed": 0, "checkpoint_every": 2, "log_every": 1},
        "vocab_size": 280,
    }))
    result = runner.invoke(app, ["train", "vqa", str(tmp_path / "data"), "--config", str(recipe),
                                 "--out", str(tmp_path / "run"), "--threads", "1", "--init-from", str(source_dir)])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "run" / "model"
    record = json.loads((folder / "training.json").read_text())
    assert record["settings"]["init_from"] == str(source_dir) and "--init-from" in record["command"]
    assert record["data"]["init_from"]["tensors"] > 10 and record["data"]["init_from"]["folder"] == str(source_dir)
    trained = FlamingoVLM.from_pretrained(folder)
    assert trained.cfg.fft_channel is True and trained.cfg.head == "multiclass"
    # a recipe that contradicts the source fails with one line, and nothing is written
    recipe.write_text(json.dumps({"model": {"dim": 64}, "train": {"steps": 1}, "init_from": str(source_dir)}))
    result = runner.invoke(app, ["train", "vqa", str(tmp_path / "data"), "--config", str(recipe),
                                 "--out", str(tmp_path / "bad")])
    assert result.exit_code != 0 and "recipe sets dim = 64" in result.output
    assert not (tmp_path / "bad" / "model").exists()
