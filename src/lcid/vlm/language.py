"""Causal language models: the built-in small GPT-2, or any Hugging Face causal LM."""

from __future__ import annotations

from typing import Any

from torch import nn

from lcid.errors import InputError


def small_gpt2(*, vocab_size: int, dim: int, n_layers: int, n_heads: int, max_length: int, dropout: float) -> nn.Module:
    """A GPT-2-architecture LM with random weights, built from :class:`transformers.GPT2Config`."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=max_length,
        n_embd=dim,
        n_layer=n_layers,
        n_head=n_heads,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    return GPT2LMHeadModel(config)


def load_hf_causal_lm(name_or_path: str) -> tuple[nn.Module, dict[str, Any]]:
    """Load a pretrained causal LM (``AutoModelForCausalLM``) and its config dict."""
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(name_or_path)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load language model {name_or_path} ({exc.__class__.__name__})") from exc
    return model, model.config.to_dict()


def causal_lm_from_hf_config(hf_config: dict[str, Any]) -> nn.Module:
    """Rebuild a causal LM from its saved config, with random weights."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = dict(hf_config)
    model_type = cfg.pop("model_type")
    return AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **cfg))


def decoder_layers(lm: nn.Module) -> nn.ModuleList:
    """The list of decoder blocks of a causal LM (GPT-2 ``transformer.h``, Llama ``model.layers`` …).

    Found as the first ``ModuleList`` whose length equals ``config.num_hidden_layers``.
    """
    n = int(lm.config.num_hidden_layers)
    for _, module in lm.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n:
            return module
    raise InputError(f"cannot find the {n} decoder layers of {type(lm).__name__}")


def hidden_size(lm: nn.Module) -> int:
    """Width of the LM's hidden states."""
    return int(lm.config.hidden_size)
