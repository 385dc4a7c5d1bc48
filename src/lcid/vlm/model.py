"""The Flamingo-style vision-language model.

image ``(B, 1, H, W)`` -> vision encoder -> linear projection -> perceiver resampler
(``n_latents`` tokens) -> gated cross-attention before the language model's decoder blocks;
plus a classification head on the last prompt token (answer vocabulary or problem ids).

Saved and loaded the Hugging Face way (:class:`huggingface_hub.PyTorchModelHubMixin`):
``config.json`` + ``model.safetensors`` + ``README.md`` model card, and ``tokenizer.json``;
a multi-label model may also hold ``thresholds.json``, its per-label decision thresholds.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from lcid.errors import InputError
from lcid.io.atomic import atomic_write_text
from lcid.vlm.config import VLMConfig
from lcid.vlm.gated_cross_attention import ConditionedDecoderLayer, GatedCrossAttentionBlock
from lcid.vlm.language import causal_lm_from_hf_config, decoder_layers, hidden_size, load_hf_causal_lm, small_gpt2
from lcid.vlm.resampler import PerceiverResampler
from lcid.vlm.tokenizer import VLMTokenizer
from lcid.vlm.vision import HFVisionEncoder, SmallCNN, load_hf_vision, vision_from_hf_config

#: Per-label decision thresholds of a multi-label head, saved beside the weights.
THRESHOLDS_FILE = "thresholds.json"
#: Decision threshold of a label without a chosen one (and of every label of older models).
DEFAULT_THRESHOLD = 0.5


class FlamingoVLM(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="lcid",
    tags=["vision-language", "flamingo", "medical-imaging", "lcid"],
    license="bsd-3-clause",
    repo_url="https://github.com/lcid-project/lcid",
):
    """Vision encoder + perceiver resampler + gated cross-attention LM + classification head.

    Parameters
    ----------
    config
        :meth:`VLMConfig.to_dict` output (this is what ``config.json`` holds).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        cfg = VLMConfig.from_dict(config)
        self.cfg = cfg
        self.tokenizer: VLMTokenizer | None = None
        #: Per-label decision thresholds of a multi-label head (``thresholds.json``); labels
        #: not in it use :data:`DEFAULT_THRESHOLD`.
        self.thresholds: dict[str, float] = {}
        self.thresholds_record: dict[str, Any] = {}
        if cfg.vision == "cnn":
            self.vision: nn.Module = SmallCNN(channels=cfg.cnn_channels, image_size=cfg.image_size,
                                              dropout=cfg.dropout, fft_channel=cfg.fft_channel,
                                              background_window=cfg.background_window)
        else:
            if cfg.fft_channel or cfg.background_window:
                raise InputError("fft_channel and background_window need the built-in CNN (vision: cnn), "
                                 "not a Hugging Face encoder")
            self.vision = HFVisionEncoder(vision_from_hf_config(cfg.vision_hf_config or {}))
        if cfg.language == "gpt2-scratch":
            self.lm = small_gpt2(
                vocab_size=cfg.vocab_size,
                dim=cfg.dim,
                n_layers=cfg.n_layers,
                n_heads=cfg.n_heads,
                max_length=cfg.max_length,
                dropout=cfg.dropout,
            )
        else:
            self.lm = causal_lm_from_hf_config(cfg.language_hf_config or {})
            if self.lm.get_input_embeddings().num_embeddings != cfg.vocab_size:
                self.lm.resize_token_embeddings(cfg.vocab_size)
        dim = hidden_size(self.lm)
        heads = cfg.n_heads if dim % cfg.n_heads == 0 else 1
        self.project = nn.Linear(self.vision.hidden_size, dim)
        self.resampler = PerceiverResampler(
            dim, n_latents=cfg.n_latents, depth=cfg.resampler_depth, n_heads=heads, dropout=cfg.dropout
        )
        layers = decoder_layers(self.lm)
        for i in range(len(layers)):
            xattn = (
                GatedCrossAttentionBlock(dim, n_heads=heads, dropout=cfg.dropout)
                if i % cfg.cross_attn_every == 0
                else None
            )
            layers[i] = ConditionedDecoderLayer(layers[i], xattn)
        self._conditioned = [m for m in layers]
        n_labels = len(cfg.head_labels)
        self.head = _classifier(2 * dim, n_labels, hidden=cfg.head_hidden, dropout=cfg.dropout) if (
            cfg.head != "none" and n_labels
        ) else None
        # Image-level auxiliary heads (organ, modality ...) on the pooled image latents; only
        # built when configured, so models saved without them load unchanged.
        self.aux_heads = (
            nn.ModuleDict({name: nn.Linear(dim, len(labels)) for name, labels in cfg.aux_labels.items()})
            if cfg.aux_labels
            else None
        )

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, cfg: VLMConfig, tokenizer: VLMTokenizer) -> FlamingoVLM:
        """A new model for training: built-in parts at random, named HF backbones pretrained.

        The backbones' configs are copied into the model's config so that the saved model
        rebuilds offline without the original backbones.
        """
        vision_model = lm_model = None
        if cfg.vision != "cnn":
            vision_model, vision_cfg = load_hf_vision(cfg.vision)
            size = vision_cfg.get("image_size", cfg.image_size)
            cfg = replace(cfg, vision_hf_config=vision_cfg, image_size=int(size))
        if cfg.language != "gpt2-scratch":
            lm_model, lm_cfg = load_hf_causal_lm(cfg.language)
            cfg = replace(cfg, language_hf_config=lm_cfg)
        cfg = replace(cfg, vocab_size=max(tokenizer.vocab_size, _vocab(lm_model)))
        model = cls(cfg.to_dict())
        if vision_model is not None:
            model.vision.model.load_state_dict(vision_model.state_dict())
        if lm_model is not None:
            lm_model.resize_token_embeddings(cfg.vocab_size)
            _load_wrapped(model.lm, lm_model.state_dict())
        model.tokenizer = tokenizer
        return model

    # ------------------------------------------------------------------ forward
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` in [0, 1] -> image latents ``(B, n_latents, dim)``."""
        return self.resampler(self.project(self.vision(pixels)))

    def forward(
        self,
        pixels: torch.Tensor | None,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        head_positions: torch.Tensor | None = None,
        latents: torch.Tensor | None = None,
        past_key_values: Any | None = None,
        position_ids: torch.Tensor | None = None,
        use_cache: bool = False,
    ) -> dict[str, Any]:
        """Language-model logits and classification-head logits.

        Parameters
        ----------
        pixels
            ``(B, 1, H, W)`` images in [0, 1]; ``None`` (with ``latents=None``) runs the plain LM.
        input_ids, attention_mask
            ``(B, T)`` right-padded token ids and mask.
        head_positions
            ``(B,)`` index of the last prompt token, read by the head; default the last
            non-padding token.
        latents
            Precomputed :meth:`encode_images` output (skips the vision encoder).
        past_key_values, position_ids, use_cache
            The LM's key-value cache for incremental decoding (:func:`lcid.vlm.predict.predict`):
            with ``use_cache`` the result holds ``past_key_values``; given a cache,
            ``input_ids`` are only the new tokens, ``attention_mask`` covers cached and new
            tokens, and the head is skipped. The gated cross-attention acts on each token on
            its own, so the cached tokens need no image pass again.

        Returns
        -------
        dict
            ``logits`` ``(B, T, vocab)``; ``head_logits`` ``(B, n_labels)`` when there is a head;
            ``aux_logits`` ``{name: (B, n_classes)}`` when there are auxiliary heads and an image.
        """
        if latents is None and pixels is not None:
            latents = self.encode_images(pixels)
        for layer in self._conditioned:
            layer.condition(latents)
        try:
            out = self.lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          past_key_values=past_key_values, use_cache=use_cache,
                          output_hidden_states=past_key_values is None)
        finally:
            for layer in self._conditioned:
                layer.condition(None)
        result: dict[str, Any] = {"logits": out.logits}
        if self.aux_heads is not None and latents is not None:
            pooled_image = latents.mean(dim=1)
            result["aux_logits"] = {name: head(pooled_image) for name, head in self.aux_heads.items()}
        if use_cache:
            result["past_key_values"] = out.past_key_values
        if self.head is not None and past_key_values is None:
            if head_positions is None:
                head_positions = attention_mask.sum(dim=1) - 1
            hidden = out.hidden_states[-1]
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), head_positions]
            image = latents.mean(dim=1) if latents is not None else torch.zeros_like(pooled)
            result["head_logits"] = self.head(torch.cat([pooled, image], dim=-1))
        return result

    # ------------------------------------------------------------------ decisions
    def threshold(self, label: str) -> float:
        """Head probability at or above which ``label`` counts as present."""
        return float(self.thresholds.get(label, DEFAULT_THRESHOLD))

    def set_thresholds(self, thresholds: Mapping[str, float], record: Mapping[str, Any] | None = None) -> None:
        """Use these per-label decision thresholds (kept by :meth:`save_pretrained`).

        ``record`` says how they were chosen (data, rule); it is saved alongside.
        """
        self.thresholds = checked_thresholds(thresholds, self.cfg.head_labels)
        self.thresholds_record = dict(record or {})

    # ------------------------------------------------------------------ saving
    def _save_pretrained(self, save_directory: Path) -> None:
        super()._save_pretrained(save_directory)
        if self.tokenizer is not None:
            self.tokenizer.save(save_directory)
        if self.thresholds:
            write_thresholds(Path(save_directory), self.thresholds, self.thresholds_record)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, **kwargs: Any) -> FlamingoVLM:
        with contextlib.redirect_stdout(io.StringIO()):  # the mixin prints a line on stdout
            model = super()._from_pretrained(model_id=model_id, **kwargs)
        folder = Path(model_id)
        if not folder.is_dir():
            from huggingface_hub import hf_hub_download

            folder = Path(
                hf_hub_download(model_id, "tokenizer.json", revision=kwargs.get("revision"),
                                local_files_only=kwargs.get("local_files_only", False))
            ).parent
        model.tokenizer = VLMTokenizer.load(folder)
        saved = read_thresholds(folder)
        if saved is not None:
            model.set_thresholds(*saved)
        return model


def checked_thresholds(thresholds: Mapping[str, float], labels: Sequence[str]) -> dict[str, float]:
    """``thresholds`` as floats, refused (:class:`InputError`) for labels not in ``labels`` or
    values outside (0, 1)."""
    unknown = sorted(set(thresholds) - set(labels))
    if unknown:
        raise InputError(f"thresholds for labels the head does not have: {', '.join(unknown)}")
    bad = [label for label, t in thresholds.items() if not 0.0 < float(t) < 1.0]
    if bad:
        raise InputError(f"thresholds must lie strictly between 0 and 1 ({', '.join(bad)})")
    return {label: float(t) for label, t in thresholds.items()}


def read_thresholds(folder: Path) -> tuple[dict[str, float], dict[str, Any]] | None:
    """``(thresholds, record)`` from a folder's ``thresholds.json``; ``None`` without one."""
    path = Path(folder) / THRESHOLDS_FILE
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
        return dict(saved["thresholds"]), dict(saved.get("record") or {})
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise InputError(f"{path} is not a thresholds file ({exc.__class__.__name__})") from exc


def write_thresholds(folder: Path, thresholds: Mapping[str, float], record: Mapping[str, Any] | None = None) -> Path:
    """Write ``thresholds.json`` (``{"default", "thresholds", "record"}``) into a model folder."""
    path = Path(folder) / THRESHOLDS_FILE
    data = {"default": DEFAULT_THRESHOLD, "thresholds": {k: round(float(v), 4) for k, v in thresholds.items()},
            "record": dict(record or {})}
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path


def _classifier(width: int, n_labels: int, *, hidden: int, dropout: float) -> nn.Sequential:
    """LayerNorm, dropout and a linear layer; with ``hidden > 0`` a GELU hidden layer first.

    The layer names of the linear head (``0``, ``1``, ``2``) are those of saved models.
    """
    if hidden <= 0:
        return nn.Sequential(nn.LayerNorm(width), nn.Dropout(dropout), nn.Linear(width, n_labels))
    return nn.Sequential(
        nn.LayerNorm(width), nn.Dropout(dropout), nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout),
        nn.Linear(hidden, n_labels),
    )


def _vocab(lm: nn.Module | None) -> int:
    return 0 if lm is None else int(lm.get_input_embeddings().num_embeddings)


def _load_wrapped(wrapped_lm: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a plain LM's weights into the LM whose decoder layers were wrapped."""
    layers = decoder_layers(wrapped_lm)
    prefix = next(name for name, module in wrapped_lm.named_modules() if module is layers)
    renamed = {}
    for key, value in state.items():
        if key.startswith(prefix + "."):
            index, rest = key[len(prefix) + 1 :].split(".", 1)
            key = f"{prefix}.{index}.layer.{rest}"
        renamed[key] = value
    missing, unexpected = wrapped_lm.load_state_dict(renamed, strict=False)
    missing = [k for k in missing if ".cross_attention." not in k]
    if missing or unexpected:
        raise RuntimeError(f"backbone weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
