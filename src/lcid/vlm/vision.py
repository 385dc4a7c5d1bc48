"""Vision encoders: the built-in small CNN, or any Hugging Face vision model.

Both map a batch of single-channel images ``(B, 1, H, W)`` in [0, 1] to a sequence of
feature tokens ``(B, N, C)``. The CNN can also see the image's Fourier spectrum
(:func:`log_spectrum`) and a narrow dark window of it (:func:`background_window`) as extra
channels.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lcid.errors import InputError


def log_spectrum(pixels: torch.Tensor) -> torch.Tensor:
    """Log-magnitude of the centred 2D Fourier transform, standardised per image.

    Parameters
    ----------
    pixels
        ``(B, 1, H, W)`` images.

    Returns
    -------
    torch.Tensor
        ``(B, 1, H, W)``: ``log(1 + |FFT|)`` with the zero frequency in the centre, shifted and
        scaled to zero mean and unit standard deviation in each image (a blank image gives 0).
    """
    spectrum = torch.fft.fftshift(torch.fft.fft2(pixels.float(), norm="ortho"), dim=(-2, -1))
    log_magnitude = torch.log1p(spectrum.abs())
    mean = log_magnitude.mean(dim=(-2, -1), keepdim=True)
    std = log_magnitude.std(dim=(-2, -1), keepdim=True)
    return ((log_magnitude - mean) / std.clamp_min(1e-6)).to(pixels.dtype)


def background_window(pixels: torch.Tensor, top: float) -> torch.Tensor:
    """The image displayed with a narrow dark window: ``clip(pixels / top, 0, 1)``.

    What a reader does to look for a ghost or stripes outside the head: intensities from 0 to
    ``top`` (a fraction of the picture's display range) fill the whole range and the head
    saturates. A replica of a few percent of the head's signal is a few grey levels in the
    picture as displayed, but half the range in this window.

    Parameters
    ----------
    pixels
        ``(B, 1, H, W)`` images in [0, 1].
    top
        Upper end of the window, in (0, 1].

    Returns
    -------
    torch.Tensor
        Same shape, in [0, 1].
    """
    if not 0.0 < top <= 1.0:
        raise InputError(f"the background window's top must be in (0, 1], not {top}")
    return (pixels / top).clamp(0.0, 1.0)


class SmallCNN(nn.Module):
    """Four stride-2 conv stages with GroupNorm and a learned position embedding.

    Small and regularised (dropout on the tokens) for data sets of a few hundred images.
    An ``image_size`` of 96 gives ``6 x 6 = 36`` tokens of ``channels[-1]`` features. With
    ``fft_channel`` the image's :func:`log_spectrum` is stacked as a second input channel; with
    ``background_window`` above 0, :func:`background_window` of the image with that top is
    stacked after it (the channel order of models saved without it is unchanged).
    """

    def __init__(
        self,
        *,
        channels: tuple[int, ...],
        image_size: int,
        dropout: float,
        fft_channel: bool = False,
        background_window: float = 0.0,
    ) -> None:
        super().__init__()
        if background_window and not 0.0 < background_window <= 1.0:
            raise InputError(f"background_window must be 0 (off) or in (0, 1], not {background_window}")
        self.fft_channel = fft_channel
        self.background_window = float(background_window)
        layers: list[nn.Module] = []
        c_in = 1 + int(fft_channel) + int(self.background_window > 0)
        for c in channels:
            layers += [
                nn.Conv2d(c_in, c, 3, stride=2, padding=1),
                nn.GroupNorm(min(8, c), c),
                nn.GELU(),
                nn.Conv2d(c, c, 3, padding=1),
                nn.GroupNorm(min(8, c), c),
                nn.GELU(),
            ]
            c_in = c
        self.features = nn.Sequential(*layers)
        side = image_size
        for _ in channels:
            side = (side + 1) // 2
        self.n_tokens = side * side
        self.hidden_size = channels[-1]
        self.position = nn.Parameter(torch.zeros(1, self.n_tokens, self.hidden_size))
        nn.init.normal_(self.position, std=0.02)
        self.dropout = nn.Dropout(dropout)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` -> ``(B, N, C)``."""
        parts = [pixels]
        if self.fft_channel:
            parts.append(log_spectrum(pixels))
        if self.background_window > 0:
            parts.append(background_window(pixels, self.background_window))
        maps = self.features(torch.cat(parts, dim=1) if len(parts) > 1 else pixels)
        tokens = maps.flatten(2).transpose(1, 2)
        return self.dropout(tokens + self.position)


class HFVisionEncoder(nn.Module):
    """A Hugging Face vision model; grey images are repeated to three channels.

    ``last_hidden_state`` of the model (``(B, N, C)``) is used as the token sequence.
    Composite models (a full CLIP) are reduced to their ``vision_model``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        cfg = model.config
        self.hidden_size = int(getattr(cfg, "hidden_size", 0) or cfg.hidden_sizes[-1])
        self.n_channels = int(getattr(cfg, "num_channels", 3))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` in [0, 1] -> ``(B, N, C)``."""
        x = (pixels - 0.5) / 0.5
        x = x.expand(-1, self.n_channels, -1, -1)
        out = self.model(pixel_values=x)
        hidden = out.last_hidden_state
        if hidden.ndim == 4:  # convolutional backbones: (B, C, h, w)
            hidden = hidden.flatten(2).transpose(1, 2)
        return hidden


def _vision_part(model: nn.Module) -> nn.Module:
    return getattr(model, "vision_model", None) or model


def load_hf_vision(name_or_path: str) -> tuple[nn.Module, dict[str, Any]]:
    """Load a pretrained Hugging Face vision model and its config dict (offline when cached)."""
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(name_or_path)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load vision encoder {name_or_path} ({exc.__class__.__name__})") from exc
    model = _vision_part(model)
    return model, model.config.to_dict()


def vision_from_hf_config(hf_config: dict[str, Any]) -> nn.Module:
    """Rebuild a Hugging Face vision model from its saved config, with random weights."""
    from transformers import AutoConfig, AutoModel

    cfg = dict(hf_config)
    model_type = cfg.pop("model_type")
    return _vision_part(AutoModel.from_config(AutoConfig.for_model(model_type, **cfg)))
