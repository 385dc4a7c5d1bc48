"""The Fourier-spectrum and background-window input channels and per-problem decision thresholds of the VLM."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lcid.errors import InputError
from lcid.vlm.config import VLMConfig
from lcid.vlm.dwi.calibrate import best_threshold, calibrate, choose_thresholds, f1_at, validation_rows
from lcid.vlm.dwi.training import scan_holdout, source_holdout
from lcid.vlm.model import DEFAULT_THRESHOLD, THRESHOLDS_FILE, FlamingoVLM
from lcid.vlm.predict import Prediction, detected
from lcid.vlm.tokenizer import VLMTokenizer
from lcid.vlm.vision import SmallCNN, background_window, log_spectrum

TINY = dict(image_size=32, cnn_channels=(4, 8), dim=32, n_layers=1, n_heads=2, n_latents=2, max_length=32,
            answer_tokens=4, dropout=0.0, head="multilabel", head_labels=("noise", "spikes", "ghosting"))


@pytest.fixture(scope="module")
def tokenizer():
    return VLMTokenizer.train(["question: what is wrong? answer: spikes and noise"] * 4, vocab_size=64)


def test_log_spectrum_finds_a_k_space_spike():
    # a spike in k-space is a stripe pattern in the image: one bright pair in the spectrum
    x = np.mgrid[0:32, 0:32][1]
    stripes = 0.5 + 0.4 * np.cos(2 * np.pi * 5 * x / 32)
    spectrum = log_spectrum(torch.tensor(stripes, dtype=torch.float32)[None, None])[0, 0]
    assert spectrum.shape == (32, 32)
    assert abs(float(spectrum.mean())) < 1e-5 and float(spectrum.std()) == pytest.approx(1.0, abs=1e-3)
    peaks = {(int(i) // 32, int(i) % 32) for i in spectrum.flatten().topk(3).indices}
    assert peaks == {(16, 16), (16, 11), (16, 21)}  # zero frequency in the centre, +-5 cycles along x
    assert float(log_spectrum(torch.zeros(1, 1, 8, 8)).abs().max()) == 0.0  # blank image: no NaN


def test_fft_channel_cnn_sees_the_spectrum():
    torch.manual_seed(0)
    plain = SmallCNN(channels=(4, 8), image_size=32, dropout=0.0)
    both = SmallCNN(channels=(4, 8), image_size=32, dropout=0.0, fft_channel=True)
    assert plain.features[0].in_channels == 1 and both.features[0].in_channels == 2
    pixels = torch.rand(2, 1, 32, 32)
    assert both(pixels).shape == plain(pixels).shape == (2, 64, 8)


def test_fft_channel_is_off_for_old_configs_and_refused_with_hf_encoders():
    assert VLMConfig.from_dict({"vision": "cnn"}).fft_channel is False
    with pytest.raises(InputError, match="fft_channel"):
        FlamingoVLM(VLMConfig(vision="some/vit", vision_hf_config={"model_type": "vit"}, fft_channel=True).to_dict())


def test_background_window_makes_a_faint_replica_plain():
    picture = torch.zeros(1, 1, 16, 16)
    picture[..., 4:12, 4:12] = 1.0  # the head
    picture[..., 0:2, 4:12] = 0.03  # a replica at 3 % of the head's signal: 8 grey levels in 255
    shown = background_window(picture, 0.1)
    assert float(shown[..., 0, 5]) == pytest.approx(0.3) and float(shown[..., 8, 8]) == 1.0
    assert float(shown[..., 8, 0]) == 0.0
    with pytest.raises(InputError, match="background window"):
        background_window(picture, 0.0)


def test_background_window_channel_is_a_third_input_channel_and_off_by_default():
    assert VLMConfig.from_dict({"vision": "cnn", "fft_channel": True}).background_window == 0.0
    three = SmallCNN(channels=(4, 8), image_size=32, dropout=0.0, fft_channel=True, background_window=0.1)
    two = SmallCNN(channels=(4, 8), image_size=32, dropout=0.0, background_window=0.1)
    assert three.features[0].in_channels == 3 and two.features[0].in_channels == 2
    pixels = torch.rand(2, 1, 32, 32)
    assert three(pixels).shape == two(pixels).shape == (2, 64, 8)
    # the window's channel matters: a change in the dark range alone changes the features
    three.eval()
    darker = pixels.clone()
    darker[pixels < 0.1] *= 0.5
    assert not torch.allclose(three(pixels), three(darker))
    with pytest.raises(InputError, match="background_window"):
        SmallCNN(channels=(4, 8), image_size=32, dropout=0.0, background_window=1.5)
    with pytest.raises(InputError, match="background_window"):
        FlamingoVLM(VLMConfig(vision="some/vit", vision_hf_config={"model_type": "vit"},
                              background_window=0.1).to_dict())


def test_background_window_model_saves_and_loads(tokenizer, tmp_path):
    model = FlamingoVLM.build(VLMConfig(**TINY, fft_channel=True, background_window=0.1), tokenizer)
    model.save_pretrained(tmp_path / "m", config=model.cfg.to_dict())
    loaded = FlamingoVLM.from_pretrained(str(tmp_path / "m"))
    assert loaded.cfg.background_window == 0.1 and loaded.vision.features[0].in_channels == 3


def test_thresholds_saved_and_loaded_with_the_model(tokenizer, tmp_path):
    model = FlamingoVLM.build(VLMConfig(**TINY, fft_channel=True), tokenizer)
    assert model.threshold("spikes") == DEFAULT_THRESHOLD
    model.save_pretrained(tmp_path / "old", config=model.cfg.to_dict())
    assert not (tmp_path / "old" / THRESHOLDS_FILE).exists()  # no thresholds: nothing new on disk
    model.set_thresholds({"spikes": 0.25, "noise": 0.6}, {"source": "unit test"})
    model.save_pretrained(tmp_path / "new", config=model.cfg.to_dict())
    loaded = FlamingoVLM.from_pretrained(str(tmp_path / "new"))
    assert loaded.cfg.fft_channel and loaded.thresholds == {"spikes": 0.25, "noise": 0.6}
    assert loaded.threshold("ghosting") == DEFAULT_THRESHOLD and loaded.thresholds_record["source"] == "unit test"
    prediction = Prediction(generated="", head=(("noise", 0.55), ("spikes", 0.3), ("ghosting", 0.45)))
    assert detected(loaded, prediction) == ("spikes",)
    assert detected(FlamingoVLM.from_pretrained(str(tmp_path / "old")), prediction) == ("noise",)
    with pytest.raises(InputError, match="does not have"):
        model.set_thresholds({"motion": 0.3})
    with pytest.raises(InputError, match="between 0 and 1"):
        model.set_thresholds({"noise": 1.0})
    (tmp_path / "new" / THRESHOLDS_FILE).write_text("[1, 2]")
    with pytest.raises(InputError, match="not a thresholds file"):
        FlamingoVLM.from_pretrained(str(tmp_path / "new"))


def test_f1_threshold_choice():
    truth = np.array([True, True, True, False, False, False])
    probs = np.array([0.9, 0.35, 0.3, 0.2, 0.1, 0.6])
    assert f1_at(probs, truth, 0.5) == pytest.approx(2 * 1 / (2 + 3))
    threshold, f1 = best_threshold(probs, truth)
    assert threshold == 0.3 and f1 == pytest.approx(2 * 3 / (4 + 3))
    # an uninformative label: every threshold up to the lowest positive ties; the one nearest 0.5 wins
    assert best_threshold(np.full(4, 0.7), np.ones(4, dtype=bool))[0] == 0.5
    table = np.stack([probs, probs], axis=1)
    choices = choose_thresholds(table, np.stack([truth, truth], axis=1), ["a", "b"], min_positives=3)
    assert choices["a"]["threshold"] == 0.3 and choices["a"]["chosen"]
    few = choose_thresholds(table, np.stack([truth, truth], axis=1), ["a", "b"], min_positives=4)
    assert few["b"] == {"threshold": 0.5, "f1": choices["b"]["f1_default"], "f1_default": choices["b"]["f1_default"],
                        "positives": 3, "chosen": False}
    with pytest.raises(InputError):
        choose_thresholds(table, truth[:, None], ["a", "b"])


def _rows(n_scans: int, per_scan: int) -> list[dict]:
    return [{"id": f"{s}-{q}", "source": "phantom_0" if s % 2 else "siemens_prisma_ap", "seed": 100 + s,
             "split": "train", "labels": []} for s in range(n_scans) for q in range(per_scan)]


def test_scan_holdout_keeps_each_scan_on_one_side():
    rows = _rows(20, 4)
    fitted, held = scan_holdout(rows, fraction=0.15, seed=0)
    assert len(held) == 3 * 4 and len(fitted) + len(held) == len(rows)
    assert not {(r["source"], r["seed"]) for r in fitted} & {(r["source"], r["seed"]) for r in held}
    assert scan_holdout(rows, fraction=0.15, seed=0) == (fitted, held)
    assert scan_holdout(rows, fraction=0.0, seed=0) == (rows, [])
    with pytest.raises(InputError):
        scan_holdout(rows, fraction=1.0, seed=0)


def test_source_holdout_keeps_whole_sources_out():
    rows = _rows(20, 2)
    kept, out = source_holdout(rows, ["phantom_0"])
    assert {r["source"] for r in out} == {"phantom_0"} and {r["source"] for r in kept} == {"siemens_prisma_ap"}
    assert len(kept) + len(out) == len(rows)
    assert source_holdout(rows, []) == (rows, [])
    with pytest.raises(InputError, match="holdout_sources philips_elition not in the training split"):
        source_holdout(rows, ["philips_elition"])


def test_vqa_recipes_have_no_sources_to_hold_out(tmp_path):
    from lcid.vlm.training import VQATrainSettings, train_vqa

    with pytest.raises(InputError, match="holdout_sources is a key of DWI recipes"):
        train_vqa(tmp_path, settings=VQATrainSettings(holdout_sources=["phantom_0"]), out_dir=tmp_path / "run")


def test_thresholds_never_come_from_the_test_split_or_fitted_data(tokenizer, tmp_path):
    model = FlamingoVLM.build(VLMConfig(**TINY), tokenizer)
    with pytest.raises(InputError, match="test split"):
        calibrate(model, [{"split": "test", "labels": []}], source="x")
    training = {"data": {"dir": str(tmp_path), "split": "train"}}
    with pytest.raises(InputError, match="test split"):
        validation_rows(tmp_path, training, split="test")
    with pytest.raises(InputError, match="fitted on the train split"):
        validation_rows(tmp_path, training, split="train")
    with pytest.raises(InputError, match="kept no training scans"):
        validation_rows(tmp_path, training)
    with pytest.raises(InputError, match="not"):
        validation_rows(tmp_path / "other", {"data": {"dir": str(tmp_path), "validation_ids": ["1-0"]}})


def test_thresholds_json_format(tokenizer, tmp_path):
    model = FlamingoVLM.build(VLMConfig(**TINY), tokenizer)
    model.set_thresholds({"ghosting": 0.35})
    model.save_pretrained(tmp_path, config=model.cfg.to_dict())
    saved = json.loads((tmp_path / THRESHOLDS_FILE).read_text())
    assert saved == {"default": 0.5, "thresholds": {"ghosting": 0.35}, "record": {}}
