"""Auxiliary image targets, augmentation, the MLP head, EMA and the held-out split of the VQA recipe."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from lcid.errors import InputError
from lcid.io.vqa import VQASample
from lcid.train.schedule import lr_factor
from lcid.vlm.augment import AugmentParams, AugmentSettings, apply_augment, draw_params, random_augment
from lcid.vlm.aux_targets import (
    MODALITY_WORDS,
    aux_target_table,
    image_attributes,
    named_values,
    presupposed_modality,
)
from lcid.vlm.config import VLMConfig
from lcid.vlm.data import VLMDataset, VLMExample
from lcid.vlm.model import FlamingoVLM
from lcid.vlm.objective import aux_loss, vlm_loss
from lcid.vlm.tokenizer import VLMTokenizer
from lcid.vlm.training import holdout_split


def _sample(image: str, question: str, answer: str, qtype: str, organ: str = "HEAD", i: int = 0) -> VQASample:
    return VQASample(qid=str(i), image_path=Path(image), question=question, answer=answer,
                     answer_type="open", question_type=qtype, organ=organ)


def test_named_values_whole_words():
    assert named_values("Is this an MRI or a CT scan?", MODALITY_WORDS) == {"mri", "ct"}
    assert named_values("chest x ray", MODALITY_WORDS) == {"x-ray"}
    assert named_values("Is the lesion in the cecum?", MODALITY_WORDS) == set()  # "ct" only as a whole word


def test_image_attributes_votes():
    samples = [
        _sample("a.jpg", "What modality is this?", "mri - t2 weighted", "MODALITY"),
        _sample("a.jpg", "Is this a CT?", "no", "MODALITY"),  # a "no" says nothing positive
        _sample("a.jpg", "In what plane is this image?", "axial", "PLANE"),
        _sample("b.jpg", "Is this a CT?", "yes", "MODALITY", organ="ABD"),
        _sample("b.jpg", "Is this an MRI or a CT?", "yes", "MODALITY", organ="ABD"),  # names two: skipped
        _sample("c.jpg", "Which modality?", "ct", "MODALITY", organ="CHEST"),
        _sample("c.jpg", "Which modality?", "x-ray", "MODALITY", organ="CHEST"),  # tie: unknown
        _sample("d.jpg", "Is there a mass near the ct?", "yes", "PRES", organ="CHEST"),  # not a modality question
    ]
    got = image_attributes(samples)
    assert got == {
        "a.jpg": {"organ": "head", "modality": "mri", "plane": "axial"},
        "b.jpg": {"organ": "abd", "modality": "ct"},
        "c.jpg": {"organ": "chest"},
        "d.jpg": {"organ": "chest"},
    }
    labels, targets = aux_target_table(got, ["organ", "modality"])
    assert labels == {"organ": ("abd", "chest", "head"), "modality": ("ct", "mri")}
    assert targets["a.jpg"] == [2, 1] and targets["c.jpg"] == [1, -100]
    with pytest.raises(InputError, match="fewer than 2"):
        aux_target_table(got, ["plane"])
    with pytest.raises(InputError, match="unknown auxiliary"):
        image_attributes(samples, ["colour"])


@pytest.mark.parametrize(("question", "answer", "qtype", "expected"), [
    ("Does this CXR display pneumoperitoneum?", "no", "PRES", "x-ray"),  # negated predicate: still a CXR
    ("Is there a clavicle fracture shown in this radiograph?", "no", "PRES", "x-ray"),
    ("Which lobe shows a hyperintense signal on this T2 weighted MRI image?", "left occipital lobe", "POS", "mri"),
    ("What type of MRI sequence is this?", "diffusion weighted imaging dwi", "MODALITY", "mri"),
    ("Was this taken in PA position?", "yes", "PLANE", "x-ray"),  # PA: a projection in a PLANE question
    ("Is the PA enlarged?", "yes", "SIZE", None),  # elsewhere PA may be the pulmonary artery
    ("Is this a T1 weighted image?", "no", "MODALITY", None),  # "no" about the image itself: maybe a CT
    ("Is this a T1 weighted image?", "yes", "MODALITY", "mri"),
    ("Is this an MRI?", "no", "MODALITY", None),  # names the modality, presupposes nothing
    ("Is this a T1 or a T2 image?", "t1", "MODALITY", None),  # a choice
    ("Is this a PA or AP film?", "pa", "PLANE", None),
    ("Are there air-fluid levels on this CT radiograph?", "yes", "PRES", None),  # conflicting
    ("Is there a mass in the contrast-enhanced window?", "yes", "PRES", None),  # not presupposing words
])
def test_presupposed_modality(question, answer, qtype, expected):
    assert presupposed_modality(_sample("a.jpg", question, answer, qtype)) == expected


def test_image_attributes_presupposition_opt_in():
    samples = [
        _sample("a.jpg", "Does this radiograph show a fracture?", "no", "PRES", organ="CHEST"),
        _sample("a.jpg", "Is the heart enlarged on this film?", "yes", "SIZE", organ="CHEST"),
        _sample("b.jpg", "Which modality?", "ct", "MODALITY", organ="ABD"),
        _sample("b.jpg", "Is this a T2 weighted image?", "no", "MODALITY", organ="ABD"),  # no vote: stays CT
        _sample("c.jpg", "Is the lesion brighter on FLAIR or T1?", "flair", "PRES"),  # a choice: no vote
        _sample("d.jpg", "Is there restricted diffusion on this T2 weighted image?", "no", "PRES"),
        _sample("d.jpg", "Which modality?", "ct", "MODALITY"),  # tie with the presupposed MRI: unknown
    ]
    off = image_attributes(samples, ["modality"])
    assert off == {"b.jpg": {"modality": "ct"}, "d.jpg": {"modality": "ct"}}
    assert image_attributes(samples, ["modality"], presupposition=False) == off
    on = image_attributes(samples, ["organ", "modality", "plane"], presupposition=True)
    assert on == {"a.jpg": {"organ": "chest", "modality": "x-ray"}, "b.jpg": {"organ": "abd", "modality": "ct"},
                  "c.jpg": {"organ": "head"}, "d.jpg": {"organ": "head"}}


def test_augment_identity_shift_and_rotation():
    image = torch.zeros(1, 16, 16)
    image[0, 4:8, 2:6] = 1.0
    assert torch.allclose(apply_augment(image, AugmentParams()), image)
    # a quarter of the side to the right: the block's columns move by 4 pixels
    moved = apply_augment(image, AugmentParams(shift_x=0.25))
    assert torch.allclose(moved[0, 4:8, 6:10], torch.ones(4, 4), atol=1e-5) and float(moved[0, :, :6].sum()) < 1e-5
    turned = apply_augment(image, AugmentParams(rotation_deg=90.0))
    assert torch.allclose(turned, torch.rot90(image, k=1, dims=(1, 2)), atol=1e-5) or torch.allclose(
        turned, torch.rot90(image, k=-1, dims=(1, 2)), atol=1e-5)
    bright = apply_augment(image, AugmentParams(gain=2.0, offset=0.1))
    assert float(bright.max()) == 1.0 and math.isclose(float(bright.min()), 0.1, abs_tol=1e-6)


def test_draw_params_within_ranges_and_seeded():
    settings = AugmentSettings(max_rotation_deg=10, max_scale=0.2, max_shift=0.05, max_contrast=0.1,
                               max_brightness=0.05)
    draws = [draw_params(settings, generator=torch.Generator().manual_seed(i)) for i in range(50)]
    assert all(abs(p.rotation_deg) <= 10 and 1 / 1.2 - 1e-9 <= p.scale <= 1.2 + 1e-9 for p in draws)
    assert all(abs(p.shift_x) <= 0.05 and abs(p.gain - 1) <= 0.1 and abs(p.offset) <= 0.05 for p in draws)
    assert len({p.rotation_deg for p in draws}) == 50
    assert draw_params(settings, generator=torch.Generator().manual_seed(3)) == draws[3]
    out = random_augment(torch.rand(1, 12, 12), settings, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 12, 12) and float(out.min()) >= 0 and float(out.max()) <= 1


@pytest.fixture(scope="module")
def tokenizer():
    texts = ["question: is there a mass? answer: yes", "question: what organ? answer: brain"] * 10
    return VLMTokenizer.train(texts, vocab_size=300, min_frequency=1)


def _cfg(**kw) -> VLMConfig:
    return VLMConfig(image_size=16, cnn_channels=(4, 8), dim=32, n_layers=1, n_heads=2, n_latents=2,
                     max_length=32, dropout=0.0, head_labels=("yes", "no", "brain"), **kw)


def test_default_config_builds_the_original_model(tokenizer):
    keys = set(FlamingoVLM.build(_cfg(), tokenizer).state_dict())
    assert not any(k.startswith("aux_heads") for k in keys)
    assert {k for k in keys if k.startswith("head.")} == {"head.0.weight", "head.0.bias", "head.2.weight",
                                                           "head.2.bias"}
    assert VLMConfig.from_dict({k: v for k, v in _cfg().to_dict().items()
                                if k not in ("head_hidden", "aux_labels")}) == _cfg()


def test_aux_heads_mlp_head_save_load(tokenizer, tmp_path):
    cfg = _cfg(head_hidden=8, aux_labels={"organ": ("abd", "chest", "head"), "plane": ("axial", "pa")})
    torch.manual_seed(0)
    model = FlamingoVLM.build(cfg, tokenizer).eval()
    ids = torch.tensor([tokenizer.encode("question: is there a mass?")])
    pixels = torch.rand(1, 1, 16, 16)
    out = model(pixels, ids, torch.ones_like(ids))
    assert out["head_logits"].shape == (1, 3)
    assert {k: v.shape for k, v in out["aux_logits"].items()} == {"organ": (1, 3), "plane": (1, 2)}
    model.save_pretrained(tmp_path)
    again = FlamingoVLM.from_pretrained(tmp_path).eval()
    assert again.cfg == model.cfg
    assert torch.equal(again(pixels, ids, torch.ones_like(ids))["aux_logits"]["organ"], out["aux_logits"]["organ"])


def test_aux_loss_skips_unknown_and_learns(tokenizer):
    logits = {"organ": torch.tensor([[5.0, 0.0], [0.0, 5.0]]), "plane": torch.zeros(2, 3)}
    targets = torch.tensor([[0, -100], [1, -100]])
    assert math.isclose(float(aux_loss(logits, targets)), float(torch.log1p(torch.exp(torch.tensor(-5.0)))),
                        rel_tol=1e-5)
    # two images whose organ differs: the aux head learns to tell them apart from pixels alone
    torch.manual_seed(0)
    cfg = _cfg(aux_labels={"organ": ("abd", "head")})
    model = FlamingoVLM.build(cfg, tokenizer)
    images = {"a": torch.zeros(16, 16).numpy(), "b": torch.ones(16, 16).numpy()}
    images["b"][::2] = 0.0
    examples = [VLMExample("a", "question: what organ?", "brain", ("brain",)),
                VLMExample("b", "question: what organ?", "brain", ("brain",))]
    data = VLMDataset(examples, images, tokenizer, image_size=16, max_length=32, head_labels=cfg.head_labels,
                      image_targets={"a": [1], "b": [0]})
    batch = data.collate([data[0], data[1]])
    assert batch["aux_targets"].tolist() == [[1], [0]]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        loss, logs = vlm_loss(model, batch, aux_weight=1.0, label_smoothing=0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert logs["aux_loss"] < 0.05
    _, logs_off = vlm_loss(model, batch)
    assert "aux_loss" not in logs_off


def test_dataset_without_aux_targets_has_no_aux_key(tokenizer):
    data = VLMDataset([VLMExample("a", "question: x?", "yes", ("yes",))], {"a": torch.rand(8, 8).numpy()},
                      tokenizer, image_size=16, max_length=32, head_labels=("yes",),
                      augment=AugmentSettings(max_rotation_deg=5))
    assert "aux_targets" not in data.collate([data[0]])


def test_holdout_split():
    samples = [_sample(f"{i % 5}.jpg", "q?", "yes", "PRES", i=i) for i in range(100)]
    kept, out = holdout_split(samples, fraction=0.15, seed=1)
    assert len(out) == 15 and len(kept) == 85 and not {s.qid for s in kept} & {s.qid for s in out}
    assert holdout_split(samples, fraction=0.15, seed=1)[1] == out
    assert holdout_split(samples, fraction=0.15, seed=2)[1] != out
    assert holdout_split(samples, fraction=0.0, seed=1) == (samples, [])
    with pytest.raises(InputError, match="holdout_fraction"):
        holdout_split(samples, fraction=1.0, seed=0)
    assert lr_factor(5, warmup=10, total=100, schedule="constant") == 1.0


def test_train_vqa_with_aux_ema_and_holdout(tmp_path):
    import json

    from lcid.vlm.training import VALIDATION_FILE, VQATrainSettings, train_vqa
    from tests.test_vlm_cli_train import _data

    _data(tmp_path / "data")
    settings = VQATrainSettings(
        model={"image_size": 32, "cnn_channels": [4, 8], "dim": 32, "n_layers": 1, "n_heads": 2, "n_latents": 2,
               "max_length": 40, "head_hidden": 16},
        train={"steps": 4, "batch_size": 4, "lr": 0.001, "seed": 3, "checkpoint_every": 2, "log_every": 2},
        vocab_size=300, aux_targets=["organ", "modality"], label_smoothing=0.1,
        augment={"max_rotation_deg": 5, "max_scale": 0.1}, ema_decay=0.5, holdout_fraction=0.25,
    )
    bad = VQATrainSettings(**{**settings.__dict__, "augment": {"flip": 1.0}, "aux_targets": []})
    with pytest.raises(InputError, match="unknown augment settings: flip"):
        train_vqa(tmp_path / "data", settings=bad, out_dir=tmp_path / "run_bad")
    with pytest.raises(InputError, match="fewer than 2"):  # every image of the tiny set is HEAD
        train_vqa(tmp_path / "data", settings=settings, out_dir=tmp_path / "run0")
    settings = VQATrainSettings(**{**settings.__dict__, "aux_targets": ["modality", "plane"]})
    with pytest.raises(InputError, match="plane"):
        train_vqa(tmp_path / "data", settings=settings, out_dir=tmp_path / "run1")
    items = json.loads((tmp_path / "data" / "trainset.json").read_text())
    items += [{**items[0], "qid": 10, "question": "Is this an MRI?", "answer": "yes", "question_type": "MODALITY"},
              {**items[1], "qid": 11, "question": "Which modality?", "answer": "CT", "question_type": "MODALITY"}]
    (tmp_path / "data" / "trainset.json").write_text(json.dumps(items))
    settings = VQATrainSettings(**{**settings.__dict__, "aux_targets": ["modality"]})
    record = train_vqa(tmp_path / "data", settings=settings, out_dir=tmp_path / "run")
    assert record["data"]["held_out_questions"] == 2 and record["data"]["questions"] == 6
    model = FlamingoVLM.from_pretrained(tmp_path / "run" / "model")
    assert model.cfg.head_hidden == 16 and set(model.cfg.aux_labels) == {"modality"}
    validation = json.loads((tmp_path / "run" / "model" / VALIDATION_FILE).read_text())
    assert validation["n"] == 2 and 0.0 <= validation["overall_accuracy"] <= 1.0
    assert validation["answer_overlap"]["n"] == 2 and 0.0 <= validation["answer_overlap"]["overall"] <= 1.0


def test_train_vqa_aux_presupposition_key(tmp_path):
    import json

    from lcid.vlm.training import VQATrainSettings, train_vqa
    from tests.test_vlm_cli_train import _data

    (tmp_path / "old.yaml").write_text("aux_targets: [modality]\n")
    assert VQATrainSettings.from_yaml(tmp_path / "old.yaml").aux_presupposition is False  # default: unchanged
    _data(tmp_path / "data")
    items = json.loads((tmp_path / "data" / "trainset.json").read_text())
    items += [{**items[0], "qid": 10, "question": "Is there a fracture in this radiograph?", "answer": "no"},
              {**items[1], "qid": 11, "question": "Which modality?", "answer": "CT", "question_type": "MODALITY"}]
    (tmp_path / "data" / "trainset.json").write_text(json.dumps(items))
    settings = VQATrainSettings(
        model={"image_size": 32, "cnn_channels": [4, 8], "dim": 32, "n_layers": 1, "n_heads": 2, "n_latents": 2,
               "max_length": 40},
        train={"steps": 2, "batch_size": 4, "lr": 0.001, "seed": 3, "checkpoint_every": 2, "log_every": 2},
        vocab_size=300, aux_targets=["modality"],
    )
    with pytest.raises(InputError, match="fewer than 2"):  # off: only b.jpg (CT) has a known modality
        train_vqa(tmp_path / "data", settings=settings, out_dir=tmp_path / "run_off")
    settings = VQATrainSettings(**{**settings.__dict__, "aux_presupposition": True})
    record = train_vqa(tmp_path / "data", settings=settings, out_dir=tmp_path / "run")
    assert record["data"]["aux_known_images"] == {"modality": 2}
    assert FlamingoVLM.from_pretrained(tmp_path / "run" / "model").cfg.aux_labels == {"modality": ("ct", "x-ray")}
