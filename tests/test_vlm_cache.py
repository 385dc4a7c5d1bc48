"""Greedy generation with the key-value cache gives exactly the answers of the uncached loop."""

from __future__ import annotations

import pytest
import torch

from lcid.vlm.config import VLMConfig
from lcid.vlm.gated_cross_attention import GatedCrossAttentionBlock
from lcid.vlm.model import FlamingoVLM
from lcid.vlm.predict import predict
from lcid.vlm.tokenizer import VLMTokenizer
from tests.conftest import REAL_SERIES

TEXTS = ["question: is there a mass in the brain? answer: yes", "question: which lung? answer: left lung",
         "acquisition: 64 directions, b = 0 to 2000. question: what is wrong? answer: noise"] * 5
TINY = {"image_size": 32, "cnn_channels": (4, 8), "dim": 32, "n_layers": 2, "n_heads": 2, "n_latents": 4,
        "max_length": 48, "dropout": 0.0, "head": "multilabel", "head_labels": ("noise", "spikes")}
#: Prompts of different lengths in one batch: right padding must not change any row's answer.
PROMPTS = ["question: is there a mass in the brain? answer:", "answer:",
           "acquisition: 64 directions, b = 0 to 2000. question: which lung? answer:"]


@pytest.fixture(scope="module")
def tokenizer() -> VLMTokenizer:
    return VLMTokenizer.train(TEXTS, vocab_size=300)


def _open_gates(model: FlamingoVLM) -> FlamingoVLM:
    """Large random weights with the tanh gates open, so that the image and the position change
    every token (a freshly initialised model repeats one token)."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() > 1:
                param.normal_(0.0, 0.3)
        for block in model.modules():
            if isinstance(block, GatedCrossAttentionBlock):
                block.attn_gate.fill_(1.0)
                block.ff_gate.fill_(1.0)
    return model.eval()


def _tokens_through_lm(model: FlamingoVLM, **kwargs) -> tuple[list, int]:
    """Predictions and how many token positions went through the language model in all."""
    seen = []
    hook = model.lm.register_forward_hook(lambda _m, _a, kw, _o: seen.append(kw["input_ids"].shape[1]),
                                          with_kwargs=True)
    try:
        out = predict(model, **kwargs)
    finally:
        hook.remove()
    return out, sum(seen)


def _same_answers(model: FlamingoVLM, pixels: torch.Tensor, prompts: list[str], *, tokens: int) -> None:
    cached, n_cached = _tokens_through_lm(model, pixels=pixels, prompts=prompts, max_new_tokens=tokens)
    plain, n_plain = _tokens_through_lm(model, pixels=pixels, prompts=prompts, max_new_tokens=tokens, use_cache=False)
    assert [p.generated for p in cached] == [p.generated for p in plain]
    assert any(len(set(p.generated.split())) > 1 for p in cached)  # varied text, not one repeated token
    for a, b in zip(cached, plain, strict=True):
        assert [label for label, _ in a.head] == [label for label, _ in b.head]
        assert torch.allclose(torch.tensor([p for _, p in a.head]), torch.tensor([p for _, p in b.head]), atol=1e-5)
    longest = max(len(p.generated) for p in cached)
    assert n_cached < n_plain or longest == 0  # the cache sends only new tokens after the prompt


def test_cache_matches_the_uncached_loop_on_a_tiny_gpt2(tokenizer):
    torch.manual_seed(0)
    model = _open_gates(FlamingoVLM.build(VLMConfig(**TINY), tokenizer))
    _same_answers(model, torch.rand(len(PROMPTS), 1, 32, 32), PROMPTS, tokens=12)
    # a different image gives a different answer: the cached tokens do see the image
    a = predict(model, torch.zeros(1, 1, 32, 32), PROMPTS[:1], max_new_tokens=12)[0].generated
    b = predict(model, torch.ones(1, 1, 32, 32), PROMPTS[:1], max_new_tokens=12)[0].generated
    assert a != b


def test_cache_matches_on_a_rotary_hf_language_model(tokenizer):
    """A Llama-architecture LM (rotary positions) from a tiny config: positions follow each row's length."""
    torch.manual_seed(1)
    llama = {"model_type": "llama", "vocab_size": tokenizer.vocab_size, "hidden_size": 32, "intermediate_size": 64,
             "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
             "max_position_embeddings": 64, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
    cfg = VLMConfig(**TINY, language="tiny-llama", language_hf_config=llama, vocab_size=tokenizer.vocab_size)
    model = FlamingoVLM(cfg.to_dict())
    model.tokenizer = tokenizer
    _same_answers(_open_gates(model), torch.rand(len(PROMPTS), 1, 32, 32), PROMPTS, tokens=10)


def test_no_generation_means_head_only(tokenizer):
    torch.manual_seed(2)
    model = _open_gates(FlamingoVLM.build(VLMConfig(**TINY), tokenizer))
    out, n = _tokens_through_lm(model, pixels=torch.rand(2, 1, 32, 32), prompts=PROMPTS[:2], max_new_tokens=0)
    assert [p.generated for p in out] == ["", ""] and len(out[0].head) == 2
    assert n == len(tokenizer.encode(PROMPTS[0])) + 1  # one pass over the padded prompts


@pytest.mark.integration
def test_cache_matches_on_the_shipped_dwi_model():
    from lcid.io.nifti import load_dwi
    from lcid.vlm.ensemble import VLMEnsemble
    from lcid.vlm.image import to_model_input
    from lcid.vlm.inference import load_model
    from lcid.vlm.prompt import build_prompt
    from lcid.vlm.render import PLANES, plane_axis, render_slice

    shipped = load_model("dwi")
    model = shipped.members[0] if isinstance(shipped, VLMEnsemble) else shipped  # the member that writes the text
    scan = load_dwi(REAL_SERIES["philips_achieva"])
    pictures, prompts = [], []
    for i, plane in enumerate(PLANES):
        index = scan.shape[plane_axis(scan.affine, plane)] // 2
        picture = render_slice(scan.data[..., i + 1], scan.affine, plane=plane, index=index)
        pictures.append(to_model_input(picture, size=model.cfg.image_size))
    prompts = [build_prompt("What is wrong with this image?"),
               build_prompt("Is this scan OK for tractography?", acq="15 directions, b = 0 to 2000"),
               build_prompt("Can I use this data?", acq="64 directions, b = 0 to 3000",
                            findings={"noise": "mild", "motion": "moderate"})]
    _same_answers(model, torch.stack(pictures), prompts, tokens=model.cfg.answer_tokens)
