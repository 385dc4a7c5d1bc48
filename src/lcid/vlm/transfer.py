"""Start a new model from another saved model's weights (``init_from`` in a training recipe).

The VQA recipe can start from the shipped DWI model (or any saved model folder) instead of from
random weights: the new model takes the source's architecture, and every tensor that does not
depend on the vocabulary or on the answer labels is copied (vision encoder, projection,
resampler, gated cross-attention, language-model layers). Token embeddings and the language
model's output layer are copied only when both models share one tokenizer; the classification
and auxiliary heads never are (their labels differ). Done by hand because it is a name-and-shape
match over two ``state_dict``s of the project's own model class; no library offers that rule.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lcid.errors import InputError
from lcid.vlm.config import VLMConfig
from lcid.vlm.model import FlamingoVLM
from lcid.vlm.tokenizer import VLMTokenizer

#: Config keys that fix the shapes of the transferable parts: a model started from another one
#: takes them from it (a recipe may repeat them only with the same value).
ARCHITECTURE_KEYS = (
    "vision", "vision_hf_config", "language", "language_hf_config", "cnn_channels", "dim", "n_layers",
    "n_heads", "n_latents", "resampler_depth", "cross_attn_every", "fft_channel", "background_window",
)

#: Parameter-name prefixes of the parts bound to a label set: never copied.
LABEL_BOUND = ("head.", "aux_heads.")


def inherit_architecture(model_section: dict[str, Any], source: VLMConfig, *, name: str) -> dict[str, Any]:
    """The recipe's ``model`` section with the source model's architecture keys.

    Parameters
    ----------
    model_section
        The recipe's model settings (image size, dropout, head size ... stay the recipe's).
    source
        The config of the model the weights come from.
    name
        How the source is named in errors.

    Raises
    ------
    InputError
        When the recipe sets an architecture key to another value than the source has.
    """
    # a Hugging Face vision encoder also fixes the input size (its position table)
    keys = ARCHITECTURE_KEYS + (("image_size",) if source.vision != "cnn" else ())
    inherited = {key: getattr(source, key) for key in keys}
    for key, value in model_section.items():
        if key in inherited and _plain(value) != _plain(inherited[key]):
            raise InputError(f"init_from {name}: the recipe sets {key} = {value!r} but that model has "
                             f"{inherited[key]!r}; leave {key} out of the recipe")
    return {**model_section, **inherited}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _vocabulary_bound(model: nn.Module) -> tuple[str, ...]:
    """State-dict prefixes of the language model's token embeddings and output layer."""
    lm = model.lm  # type: ignore[attr-defined]
    bound = {id(m) for m in (lm.get_input_embeddings(), lm.get_output_embeddings()) if m is not None}
    return tuple(f"{name}." for name, module in model.named_modules() if id(module) in bound)


def same_tokenizer(a: VLMTokenizer | None, b: VLMTokenizer | None) -> bool:
    """Whether two tokenizers map every token to the same id (then embeddings can be shared)."""
    return a is not None and b is not None and a.backend.get_vocab() == b.backend.get_vocab()


def transfer_weights(target: nn.Module, source: nn.Module, *, share_vocabulary: bool) -> dict[str, Any]:
    """Copy ``source``'s tensors into ``target`` where name and shape match.

    Parameters
    ----------
    target, source
        Two :class:`lcid.vlm.model.FlamingoVLM`.
    share_vocabulary
        Copy the token embeddings and output layer too (both models use one tokenizer).

    Returns
    -------
    dict
        ``tensors`` and ``parameters`` copied, ``left_out`` (label- or vocabulary-bound names)
        and ``shape_differs`` (names whose shapes differ, e.g. the CNN's position table at
        another image size), for the training record.

    Raises
    ------
    InputError
        When nothing could be copied (the two models do not share any part).
    """
    excluded = LABEL_BOUND + (() if share_vocabulary else _vocabulary_bound(target))
    source_state = source.state_dict()
    target_state = target.state_dict()
    copied: dict[str, torch.Tensor] = {}
    left_out: list[str] = []
    shape_differs: list[str] = []
    for key, value in target_state.items():
        if key not in source_state:
            continue
        if key.startswith(excluded):
            left_out.append(key)
        elif source_state[key].shape != value.shape:
            shape_differs.append(key)
        else:
            copied[key] = source_state[key]
    if not copied:
        raise InputError("init_from: the two models share no weights of the same name and shape")
    target.load_state_dict(copied, strict=False)
    return {
        "tensors": len(copied),
        "parameters": int(sum(t.numel() for t in copied.values())),
        "left_out": left_out,
        "shape_differs": shape_differs,
    }


def load_source(init_from: str | Path) -> tuple[FlamingoVLM, Path]:
    """The model to start from and its folder: a shipped model name (``dwi``) or a saved model
    folder; for an ensemble, its first member (one set of weights).

    Raises
    ------
    InputError
        Not installed, or unreadable.
    """
    from lcid.vlm.ensemble import ENSEMBLE_FILE, read_record
    from lcid.vlm.inference import resolve_model

    folder = resolve_model(init_from)
    if (folder / ENSEMBLE_FILE).is_file():
        folder = folder / read_record(folder)["members"][0]
    try:
        return FlamingoVLM.from_pretrained(str(folder)), folder
    except (OSError, ValueError, RuntimeError) as exc:
        raise InputError(f"init_from {init_from}: cannot load {folder} ({exc.__class__.__name__})") from exc


def started_from(source: FlamingoVLM, cfg: VLMConfig, tokenizer: VLMTokenizer) -> tuple[FlamingoVLM, dict[str, Any]]:
    """A new model of config ``cfg`` (from :func:`inherit_architecture`) holding ``source``'s weights.

    Unlike :meth:`FlamingoVLM.build` nothing is fetched: named Hugging Face backbones come from
    the source model, whose config holds theirs.

    Returns
    -------
    tuple
        The model (with ``tokenizer`` attached) and the :func:`transfer_weights` record.
    """
    shared = same_tokenizer(tokenizer, source.tokenizer)
    cfg = replace(cfg, vision_hf_config=source.cfg.vision_hf_config, language_hf_config=source.cfg.language_hf_config,
                  vocab_size=source.cfg.vocab_size if shared else tokenizer.vocab_size)
    model = FlamingoVLM(cfg.to_dict())
    model.tokenizer = tokenizer
    return model, transfer_weights(model, source, share_vocabulary=shared)
