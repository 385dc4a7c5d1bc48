"""Training-time changes to a slice picture that mimic another scanner, coil or viewer.

The DWI model is trained on three real series and evaluated on a scanner it never saw; what
differs between scanners without changing what the picture shows is: the head's orientation
on the screen (flips), the coil's smooth intensity profile (a bias field), the noise floor of
the reconstruction (Rician, grainier when the acquired matrix was smaller than the picture), the
viewer's contrast (gamma) and a little background noise; where the head sits and how large it is on
the matrix is :class:`lcid.vlm.augment.AugmentSettings`' part (zoom, shift, rotation), applied
before. Each range stays below what would change a label: no blurring or coarsening
(``low_resolution``, ``gibbs_ringing``), noise far below the ``noise`` label's SNR of 20.

The noise floor matters most: the real training series have an almost noiseless background
after windowing, and the simulated Gibbs ringing puts texture there, so a model trained without
a floor calls the ordinary noise floor of another scanner's b = 2000 picture ringing (a faint
Rician floor of 1-2 % of the object's mean made the earlier shipped model name Gibbs ringing on
a quarter to a half of clean training pictures; docs/vlm.md).

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
    noise_floor
        Largest standard deviation of a Rician noise floor, as a fraction of the object's mean
        intensity (0.025: a signal-to-noise ratio of 40 or more in the picture itself, above the
        ``noise`` label's 20 in the b0); the drawn value is uniform in ``[0, noise_floor]``. The
        noise is drawn on a grid ``grain`` times coarser than the picture (uniform in
        ``noise_grain``) and interpolated, as a smaller acquired matrix shown larger is. 0: off.
    noise_grain
        ``(low, high)`` coarseness of the noise floor's grid.
    """

    flip: bool = True
    max_bias: float = 0.15
    gamma: tuple[float, float] = (0.7, 1.5)
    max_noise: float = 0.01
    noise_floor: float = 0.0
    noise_grain: tuple[float, float] = (1.0, 2.0)

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
        if "noise_grain" in values:
            low, high = (float(v) for v in values["noise_grain"])
            if not 1 <= low <= high:
                raise InputError(f"scanner_augment noise_grain must be 1 <= low <= high, not {values['noise_grain']}")
            values["noise_grain"] = (low, high)
        if not 0 <= float(values.get("noise_floor", 0.0)) < 0.05:
            raise InputError(f"scanner_augment noise_floor must be in [0, 0.05) (the noise label starts at 0.05), "
                             f"not {values['noise_floor']}")
        return cls(**values)


@dataclass(frozen=True)
class ScannerParams:
    """One drawn change: flips, bias coefficients, gamma, noise standard deviation, noise floor
    (fraction of the object's mean) and its grain."""

    flip_y: bool = False
    flip_x: bool = False
    bias: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)
    gamma: float = 1.0
    noise: float = 0.0
    floor: float = 0.0
    grain: float = 1.0


def draw_scanner_params(settings: ScannerAugment, *, generator: torch.Generator | None = None) -> ScannerParams:
    """Draw one :class:`ScannerParams` within ``settings``' ranges."""
    u = torch.rand(9, generator=generator).tolist()
    floor, grain = draw_floor(settings, generator=generator)

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
        floor=floor,
        grain=grain,
    )


def draw_floor(settings: ScannerAugment, *, generator: torch.Generator | None = None) -> tuple[float, float]:
    """``(relative sigma, grain)`` of one noise floor within ``settings``' ranges. Nothing is drawn
    when the floor is off, so that recipes without one see the pictures they always saw."""
    low, high = settings.noise_grain
    if settings.noise_floor <= 0:
        return 0.0, low
    floor, grain = torch.rand(2, generator=generator).tolist()
    return floor * settings.noise_floor, low + grain * (high - low)


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
    if params.floor > 0:
        out = rician_floor(out, params.floor, params.grain, generator=generator)
    if params.gamma != 1.0:
        out = out**params.gamma
    if params.noise > 0:
        out = out + params.noise * torch.randn(out.shape, generator=generator, dtype=out.dtype)
    return out.clamp(0.0, 1.0)


def rician_floor(
    pixels: torch.Tensor, relative: float, grain: float, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Magnitude of ``pixels`` plus complex Gaussian noise of standard deviation ``relative`` times
    the object's mean (pixels above 0.15: pictures are windowed to [0, 1] at their display
    percentiles), drawn on a grid ``grain`` times coarser and interpolated bilinearly; clamped to
    [0, 1]. Runs per training picture, hence no percentile here (``torch.quantile`` alone would
    double a GPU run's time per step)."""
    h, w = pixels.shape[-2:]
    inside = pixels > 0.15
    sigma = relative * (float(pixels[inside].mean()) if bool(inside.any()) else 1.0)
    coarse = (max(1, round(h / grain)), max(1, round(w / grain)))
    noise = torch.randn((2, pixels.shape[0], *coarse), generator=generator, dtype=pixels.dtype)
    if coarse != (h, w):
        noise = torch.nn.functional.interpolate(noise, size=(h, w), mode="bilinear", align_corners=False)
        noise = noise / noise.std().clamp_min(1e-6)  # interpolation lowers the spread; keep sigma
    return torch.sqrt((pixels + sigma * noise[0]) ** 2 + (sigma * noise[1]) ** 2).clamp(0.0, 1.0)


def scanner_augment(
    pixels: torch.Tensor, settings: ScannerAugment, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """:func:`draw_scanner_params` then :func:`apply_scanner_params`."""
    return apply_scanner_params(pixels, draw_scanner_params(settings, generator=generator), generator=generator)


__all__ = ["ScannerAugment", "ScannerParams", "apply_scanner_params", "draw_floor", "draw_scanner_params",
           "rician_floor", "scanner_augment"]
