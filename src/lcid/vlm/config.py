"""Architecture settings of the vision-language model, saved as ``config.json``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

HeadKind = Literal["none", "multiclass", "multilabel"]


@dataclass(frozen=True)
class VLMConfig:
    """Everything needed to rebuild the architecture (not the weights).

    Attributes
    ----------
    vision
        ``"cnn"`` for the built-in small CNN trained from scratch, otherwise a Hugging Face
        hub id or local folder of a vision encoder (CLIP vision, ViT …).
    vision_hf_config
        The Hugging Face config of that encoder (filled in when it is first loaded, so the
        saved model rebuilds offline without fetching the backbone again).
    language
        ``"gpt2-scratch"`` for a small GPT-2 built from :class:`transformers.GPT2Config`,
        otherwise a hub id or local folder of a causal language model.
    language_hf_config
        As ``vision_hf_config``, for the language model.
    image_size
        Side of the square, single-channel input image (pixels).
    cnn_channels
        Channels of the built-in CNN's four stages.
    dim
        Width of the built-in GPT-2 (``n_embd``).
    n_layers, n_heads
        Depth and heads of the built-in GPT-2.
    n_latents
        Number of perceiver-resampler latent tokens per image.
    resampler_depth
        Perceiver-resampler layers.
    cross_attn_every
        A gated cross-attention layer before every ``cross_attn_every``-th LM block.
    max_length
        Longest token sequence (prompt + answer).
    answer_tokens
        Most tokens generated for an answer at inference (multilabel/no head).
    dropout
        Dropout in the built-in parts.
    head
        Classification head: ``"multiclass"`` (one answer, e.g. VQA), ``"multilabel"``
        (independent problems, e.g. DWI) or ``"none"``.
    head_labels
        The head's class names (answers, or problem ids).
    head_hidden
        Width of a hidden layer in the classification head (GELU); 0 for a single linear
        layer (the original head).
    fft_channel
        Give the built-in CNN a second input channel: the log-magnitude 2D Fourier spectrum of
        the image (:func:`lcid.vlm.vision.log_spectrum`), where k-space artifacts (spikes,
        N/2 ghosts, truncation, missing high frequencies, a noise floor) are compact patterns.
        Off in models saved without it. Not available with a Hugging Face vision encoder.
    background_window
        When above 0, give the built-in CNN one more input channel: the image shown with the
        window 0 to ``background_window`` (:func:`lcid.vlm.vision.background_window`), where a
        faint ghost or stripes outside the head fill the range. 0 (off) in models saved without
        it. Not available with a Hugging Face vision encoder.
    aux_labels
        Image-level auxiliary heads on the pooled image latents, as ``{name: class names}``
        (e.g. ``{"organ": ("abd", "chest", "head")}``); trained alongside the answers to
        strengthen the image pathway, not used for answering. Empty: none.
    """

    vision: str = "cnn"
    vision_hf_config: dict[str, Any] | None = None
    language: str = "gpt2-scratch"
    language_hf_config: dict[str, Any] | None = None
    image_size: int = 96
    cnn_channels: tuple[int, ...] = (16, 32, 64, 96)
    dim: int = 128
    n_layers: int = 2
    n_heads: int = 4
    vocab_size: int = 1024
    n_latents: int = 8
    resampler_depth: int = 1
    cross_attn_every: int = 1
    max_length: int = 64
    answer_tokens: int = 16
    dropout: float = 0.1
    head: HeadKind = "multiclass"
    head_labels: tuple[str, ...] = field(default_factory=tuple)
    head_hidden: int = 0
    fft_channel: bool = False
    background_window: float = 0.0
    aux_labels: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        out = asdict(self)
        out["cnn_channels"] = list(self.cnn_channels)
        out["head_labels"] = list(self.head_labels)
        out["aux_labels"] = {name: list(labels) for name, labels in self.aux_labels.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VLMConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        for key in ("cnn_channels", "head_labels"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        if "aux_labels" in kwargs:
            kwargs["aux_labels"] = {str(k): tuple(v) for k, v in (kwargs["aux_labels"] or {}).items()}
        return cls(**kwargs)
