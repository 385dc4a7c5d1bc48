"""Training-time changes to a slice picture that mimic another scanner, coil or viewer.

The DWI model is trained on three real series and evaluated on a scanner it never saw; what
differs between scanners without changing what the picture shows is: the head's orientation
on the screen (flips), the coil's smooth intensity profile (a bias field), the viewer's
contrast (gamma) and a little background noise; where the head sits and how large it is on
the matrix is :class:`lcid.vlm.augment.AugmentSettings`' part (zoom, shift, rotation), applied
before. Each range stays below what would change a label: no blurring or coarsening
(``low_resolution``, ``gibbs_ringing``), noise far below the ``noise`` label's SNR of 20.

Random choices are drawn apart from their application (:func:`draw_scanner_params`, then
:func:`apply_scanner_params`), from torch's global generator unless one is given, so that a
seeded training run sees the same pictures again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch

from lcid.errors import InputError


@dataclass(frozen=True)
class ScannerAugment:
    """Ranges of the random changes (a recipe's ``scanner_augment`` section).

    Attributes
    ----------
    flip
        Flip left-right and up-down, each with probability 0.5.
    max_bias
        Coefficients of a smooth quadratic log-intensity field, uniform in ``±max_bias``
        (0.15: about 0.7-1.4 of the intensity at the corners).
    gamma
        ``(low, high)`` gamma of the displayed intensities, drawn log-uniformly.
    max_noise
        Standard deviation of added Gaussian noise, uniform in ``[0, max_noise]`` (pictures
        are in [0, 1]).
    """

    flip: bool = True
    max_bias: float = 0.15
    gamma: tuple[float, float] = (0.7, 1.5)
    max_noise: float = 0.01

    @classmethod
    def from_dict(cls, options: Mapping[str, Any]) -> ScannerAugment:
        """Settings from a recipe section; unknown keys or empty ranges are an :class:`InputError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InputError(f"unknown scanner_augment keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        values = dict(options)
        if "gamma" in values:
            low, high = (float(v) for v in values["gamma"])
            if not 0 < low <= high:
                raise InputError(f"scanner_augment gamma must be 0 < low <= high, not {values['gamma']}")
            values["gamma"] = (low, high)
        return cls(**values)


@dataclass(frozen=True)
class ScannerParams:
    """One drawn change: flips, bias coefficients, gamma, noise standard deviation."""

    flip_y: bool = False
    flip_x: bool = False
    bias: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)
    gamma: float = 1.0
    noise: float = 0.0


def draw_scanner_params(settings: ScannerAugment, *, generator: torch.Generator | None = None) -> ScannerParams:
    """Draw one :class:`ScannerParams` within ``settings``' ranges."""
    u = torch.rand(9, generator=generator).tolist()

    def log_uniform(value: float, low: float, high: float) -> float:
        return math.exp(math.log(low) + value * (math.log(high) - math.log(low)))

    def sym(value: float, limit: float) -> float:
        return (2.0 * value - 1.0) * limit

    return ScannerParams(
        flip_y=settings.flip and u[0] < 0.5,
        flip_x=settings.flip and u[1] < 0.5,
        bias=tuple(sym(v, settings.max_bias) for v in u[2:7]),
        gamma=log_uniform(u[7], *settings.gamma),
        noise=u[8] * settings.max_noise,
    )


def apply_scanner_params(
    pixels: torch.Tensor, params: ScannerParams, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Apply ``params`` to a picture ``(C, H, W)`` in [0, 1]; same shape, clamped to [0, 1].

    The noise itself is drawn here (from ``generator``); everything else is deterministic.
    """
    out = pixels
    dims = [d for d, flip in ((-2, params.flip_y), (-1, params.flip_x)) if flip]
    if dims:
        out = torch.flip(out, dims=dims)
    if any(params.bias):
        h, w = out.shape[-2:]
        y = torch.linspace(-1.0, 1.0, h, dtype=out.dtype)[:, None]
        x = torch.linspace(-1.0, 1.0, w, dtype=out.dtype)[None, :]
        a, b, c, d, e = params.bias
        out = out * torch.exp(a * x + b * y + c * x * x + d * y * y + e * x * y)
    out = out.clamp(0.0, 1.0)
    if params.gamma != 1.0:
        out = out**params.gamma
    if params.noise > 0:
        out = out + params.noise * torch.randn(out.shape, generator=generator, dtype=out.dtype)
    return out.clamp(0.0, 1.0)


def scanner_augment(
    pixels: torch.Tensor, settings: ScannerAugment, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """:func:`draw_scanner_params` then :func:`apply_scanner_params`."""
    return apply_scanner_params(pixels, draw_scanner_params(settings, generator=generator), generator=generator)


__all__ = ["ScannerAugment", "ScannerParams", "apply_scanner_params", "draw_scanner_params", "scanner_augment"]
