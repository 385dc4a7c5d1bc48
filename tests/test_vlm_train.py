"""A tiny model overfits a handful of real VQA-RAD questions through the shared training loop."""

from __future__ import annotations

import json

import pytest
import torch

from lcid.io.vqa import read_vqa_split
from lcid.train.config import TrainConfig
from lcid.train.loop import fit
from lcid.vlm.config import VLMConfig
from lcid.vlm.data import VLMDataset
from lcid.vlm.model import FlamingoVLM
from lcid.vlm.objective import vlm_loss
from lcid.vlm.predict import predict
from lcid.vlm.tokenizer import VLMTokenizer
from lcid.vlm.vqa_source import answer_vocabulary, vqa_examples
from tests.conftest import SHARED_DATA


@pytest.mark.integration
def test_tiny_model_overfits_vqa_rad_questions(tmp_path):
    torch.manual_seed(0)
    samples = read_vqa_split(SHARED_DATA / "vqa_rad", split="train")
    chosen = [s for s in samples if s.answer_type == "open"][:4] + [s for s in samples if s.answer_type == "closed"][:4]
    examples, images = vqa_examples(chosen)
    tokenizer = VLMTokenizer.train([e.prompt + " " + e.answer for e in examples], vocab_size=400, min_frequency=1)
    labels = answer_vocabulary(chosen)
    cfg = VLMConfig(image_size=32, cnn_channels=(8, 16), dim=48, n_layers=2, n_heads=2, n_latents=4,
                    max_length=48, dropout=0.0, head_labels=labels)
    model = FlamingoVLM.build(cfg, tokenizer)
    data = VLMDataset(examples, images, tokenizer, image_size=32, max_length=48, head_labels=labels)
    with torch.no_grad():
        first = float(vlm_loss(model, data.collate([data[i] for i in range(len(data))]))[0])
    result = fit(model, vlm_loss, data, TrainConfig(out_dir=str(tmp_path), steps=150, batch_size=8, lr=3e-3,
                                                    log_every=20, checkpoint_every=1000), collate_fn=data.collate)
    assert result["loss"] < 0.1 * first
    assert json.loads((tmp_path / "config.json").read_text())["seed"] == 0
    pixels = torch.stack([data.pixels[e.image_key] for e in examples])
    predictions = predict(model, pixels, [e.prompt for e in examples])
    assert [p.generated for p in predictions] == [e.answer for e in examples]
    assert [p.head[0][0] for p in predictions] == [e.answer for e in examples]
