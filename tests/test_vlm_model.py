"""Model parts, tokenizer, save/load, Hugging Face backbones and a tiny overfit."""

from __future__ import annotations

import itertools

import pytest
import torch

from lcid.vlm.config import VLMConfig
from lcid.vlm.gated_cross_attention import GatedCrossAttentionBlock
from lcid.vlm.model import FlamingoVLM
from lcid.vlm.resampler import PerceiverResampler
from lcid.vlm.tokenizer import VLMTokenizer
from lcid.vlm.vision import SmallCNN

TEXTS = ["question: is there a mass in the brain? answer: yes", "question: which lung? answer: left lung",
         "question: is this a ct scan? answer: no"] * 5
TINY = dict(image_size=32, cnn_channels=(4, 8), dim=32, n_layers=2, n_heads=2, n_latents=4, max_length=32,
            dropout=0.0)


@pytest.fixture(scope="module")
def tokenizer():
    return VLMTokenizer.train(TEXTS, vocab_size=300)


def _batch(tok, text="question: is there a mass in the brain? answer:"):
    ids = torch.tensor([[tok.bos_id, *tok.encode(text)]])
    return ids, torch.ones_like(ids)


def test_tokenizer_round_trip(tokenizer, tmp_path):
    text = "is there a mass in the left lung? t1/t2, 3.5 cm!"
    assert tokenizer.decode(tokenizer.encode(text)) == text
    tokenizer.save(tmp_path)
    again = VLMTokenizer.load(tmp_path)
    assert again.encode(text) == tokenizer.encode(text)
    assert (again.pad_id, again.bos_id, again.eos_id) == (0, 1, 2)


def test_part_shapes():
    cnn = SmallCNN(channels=(4, 8, 16), image_size=40, dropout=0.0)
    tokens = cnn(torch.rand(3, 1, 40, 40))
    assert tokens.shape == (3, cnn.n_tokens, 16) and cnn.n_tokens == 25
    latents = PerceiverResampler(16, n_latents=6, depth=2, n_heads=2, dropout=0.0)(tokens)
    assert latents.shape == (3, 6, 16)
    block = GatedCrossAttentionBlock(16, n_heads=2, dropout=0.0)
    text = torch.randn(3, 7, 16)
    assert torch.equal(block(text, latents), text)  # gates start at zero
    with torch.no_grad():
        block.attn_gate.fill_(1.0)
    assert not torch.allclose(block(text, latents), text)


def test_gates_zero_means_plain_language_model(tokenizer):
    torch.manual_seed(0)
    model = FlamingoVLM.build(VLMConfig(**TINY, head_labels=("yes", "no")), tokenizer).eval()
    ids, mask = _batch(tokenizer)
    with_image = model(torch.rand(1, 1, 32, 32), ids, mask)
    without = model(None, ids, mask)
    assert with_image["logits"].shape == (1, ids.shape[1], model.cfg.vocab_size)
    assert with_image["head_logits"].shape == (1, 2)
    assert torch.equal(with_image["logits"], without["logits"])
    plain = model.lm(input_ids=ids, attention_mask=mask).logits  # the LM alone, no conditioning set
    assert torch.equal(plain, without["logits"])


def test_save_load_bit_identical(tokenizer, tmp_path):
    torch.manual_seed(1)
    model = FlamingoVLM.build(VLMConfig(**TINY, head_labels=("yes", "no", "left lung")), tokenizer)
    with torch.no_grad():
        for block in model.modules():
            if isinstance(block, GatedCrossAttentionBlock):
                block.attn_gate.fill_(0.5)
    model.save_pretrained(tmp_path, config=model.cfg.to_dict())
    assert {"config.json", "model.safetensors", "README.md", "tokenizer.json"} <= {p.name for p in tmp_path.iterdir()}
    loaded = FlamingoVLM.from_pretrained(str(tmp_path))
    assert loaded.cfg == model.cfg
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ids, mask = _batch(tokenizer)
    pixels = torch.rand(1, 1, 32, 32)
    assert torch.equal(model.eval()(pixels, ids, mask)["logits"], loaded.eval()(pixels, ids, mask)["logits"])


def test_hf_backbones_from_tiny_offline_configs(tokenizer, tmp_path, monkeypatch):
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast, ViTConfig, ViTModel

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    vit = ViTModel(ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=24, num_hidden_layers=1,
                             num_attention_heads=2, intermediate_size=32), add_pooling_layer=False)
    vit.save_pretrained(tmp_path / "vit")
    gpt = GPT2LMHeadModel(GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=32, n_embd=32, n_layer=2, n_head=2))
    gpt.save_pretrained(tmp_path / "gpt")
    PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend).save_pretrained(tmp_path / "gpt")

    hf_tok = VLMTokenizer.from_hf(str(tmp_path / "gpt"))
    cfg = VLMConfig(vision=str(tmp_path / "vit"), language=str(tmp_path / "gpt"), n_latents=4, n_heads=2,
                    max_length=32, head_labels=("yes", "no"))
    model = FlamingoVLM.build(cfg, hf_tok).eval()
    assert model.cfg.vision_hf_config["model_type"] == "vit" and model.cfg.image_size == 32
    assert torch.equal(model.vision.model.embeddings.patch_embeddings.projection.weight,
                       vit.embeddings.patch_embeddings.projection.weight)
    ids, mask = _batch(hf_tok)
    out = model(torch.rand(1, 1, 32, 32), ids, mask)
    assert torch.allclose(out["logits"], gpt.eval()(input_ids=ids, attention_mask=mask).logits, atol=1e-6)
    model.save_pretrained(tmp_path / "vlm", config=model.cfg.to_dict())
    loaded = FlamingoVLM.from_pretrained(str(tmp_path / "vlm")).eval()
    assert torch.equal(loaded(None, ids, mask)["logits"], model(None, ids, mask)["logits"])


def test_prompt_polar_and_schedule():
    from lcid.train.schedule import lr_factor
    from lcid.vlm.predict import is_polar_question
    from lcid.vlm.prompt import build_prompt

    assert is_polar_question("Is there a pneumothorax?") and is_polar_question("does the liver look normal")
    assert not is_polar_question("Is this a CT or an MRI?") and not is_polar_question("Where is the mass?")
    findings = {"findings": [{"problem": "motion", "detected": True, "severity": "moderate"},
                             {"problem": "noise", "detected": False, "severity": "none"}]}
    prompt = build_prompt("what is wrong?", acq="b=1000 x16", findings=findings, history=[("is it ok?", "no")])
    assert prompt == ("acquisition: b=1000 x16 findings: motion (moderate) question: is it ok? answer: no "
                      "question: what is wrong? answer:")
    factors = [lr_factor(s, warmup=10, total=100, schedule="cosine") for s in range(101)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(factors[10:])) and factors[100] == pytest.approx(0.05)


def test_final_answer_rules():
    from types import SimpleNamespace

    from lcid.vlm.predict import Prediction, final_answer

    vqa = SimpleNamespace(cfg=SimpleNamespace(head="multiclass"))
    pred = Prediction(generated="left lung", head=(("with contrast", 0.5), ("no", 0.2), ("right", 0.2), ("yes", 0.1)))
    assert final_answer(vqa, pred, question="Is the lesion on the left or right?") == "right"
    assert final_answer(vqa, pred, question="Is there a mass?") == "no"
    assert final_answer(vqa, pred, question="How was it taken?") == "with contrast"
    assert final_answer(SimpleNamespace(cfg=SimpleNamespace(head="other")), pred, question="x?") == "left lung"


def test_dwi_answer_names_what_the_head_found():
    from types import SimpleNamespace

    from lcid.vlm.dwi.text import problems_named, stated_severities, title
    from lcid.vlm.predict import Prediction, final_answer

    dwi = SimpleNamespace(cfg=SimpleNamespace(head="multilabel"), threshold=lambda label: 0.5)
    agrees = Prediction(f"i see {title('ghosting')} (mild). shim again.", head=(("ghosting", 0.9), ("noise", 0.2)))
    assert final_answer(dwi, agrees, question="What is wrong with this slice?") == agrees.generated
    # the text calls the slice clean but the head found ghosting: the answer names ghosting
    clean_text = Prediction("this slice looks clean.", head=(("ghosting", 0.9), ("noise", 0.2)))
    answer = final_answer(dwi, clean_text, question="What is wrong with this slice?")
    assert problems_named(answer) == ("ghosting",) and "(" not in answer.split(".")[0]  # no invented severity
    # the text names a problem under its threshold: dropped, the severity of the one kept is kept
    extra = Prediction(f"i see {title('gibbs_ringing')} (moderate) and {title('noise')} (severe).",
                       head=(("noise", 0.8), ("gibbs_ringing", 0.4)))
    answer = final_answer(dwi, extra, question="Can I use this data?")
    assert problems_named(answer) == ("noise",) and stated_severities(answer) == {"noise": "severe"}
    assert answer.startswith("No.")
    nothing = Prediction(f"i see {title('spikes')} (mild).", head=(("spikes", 0.3),))
    assert problems_named(final_answer(dwi, nothing, question="Can I use this data?")) == ()
