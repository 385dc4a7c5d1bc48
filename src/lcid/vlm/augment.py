"""Training-time image augmentation for the vision-language model.

Random choices are drawn apart from their application (:func:`draw_params`, then
:func:`apply_augment`), from torch's global generator unless one is given, so that a
resumed training run sees the same images as an uninterrupted one.

No flips: left/right carries meaning in radiology answers and findings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from lcid.errors import InputError


@dataclass(frozen=True)
class AugmentSettings:
    """Ranges of the random image changes (all symmetric around "no change").

    Attributes
    ----------
    max_rotation_deg
        Rotation drawn uniformly from ``±max_rotation_deg`` degrees.
    max_scale
        Zoom factor drawn log-uniformly from ``[1 / (1 + max_scale), 1 + max_scale]``
        (values above 1 enlarge the content, like a random resized crop).
    max_shift
        Translation drawn uniformly from ``±max_shift`` of the image side, per axis.
    max_contrast
        Intensity gain drawn uniformly from ``1 ± max_contrast``.
    max_brightness
        Intensity offset drawn uniformly from ``±max_brightness`` (images are in [0, 1]).
    """

    max_rotation_deg: float = 0.0
    max_scale: float = 0.0
    max_shift: float = 0.06
    max_contrast: float = 0.1
    max_brightness: float = 0.0

    @classmethod
    def from_dict(cls, values: Mapping[str, float]) -> AugmentSettings:
        """A recipe's ``augment`` mapping; unknown keys are an :class:`~lcid.errors.InputError`."""
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise InputError(f"unknown augment settings: {', '.join(unknown)}")
        return cls(**{k: float(v) for k, v in values.items()})


@dataclass(frozen=True)
class AugmentParams:
    """One drawn augmentation: rotation (degrees), zoom, shift (fractions of the side), gain, offset."""

    rotation_deg: float = 0.0
    scale: float = 1.0
    shift_y: float = 0.0
    shift_x: float = 0.0
    gain: float = 1.0
    offset: float = 0.0


def draw_params(settings: AugmentSettings, *, generator: torch.Generator | None = None) -> AugmentParams:
    """Draw one :class:`AugmentParams` within ``settings``' ranges."""
    u = torch.rand(6, generator=generator).tolist()

    def sym(value: float, limit: float) -> float:
        return (2.0 * value - 1.0) * limit

    log_scale = sym(u[1], math.log1p(settings.max_scale))
    return AugmentParams(
        rotation_deg=sym(u[0], settings.max_rotation_deg),
        scale=math.exp(log_scale),
        shift_y=sym(u[2], settings.max_shift),
        shift_x=sym(u[3], settings.max_shift),
        gain=1.0 + sym(u[4], settings.max_contrast),
        offset=sym(u[5], settings.max_brightness),
    )


def apply_augment(pixels: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    """Apply ``params`` to an image ``(C, H, W)`` in [0, 1]; returns the same shape, clamped to [0, 1].

    The geometric part is one affine resampling (bilinear, zero fill outside the image);
    the intensity part is ``gain * x + offset``.
    """
    out = pixels
    if params.rotation_deg or params.scale != 1.0 or params.shift_x or params.shift_y:
        angle = math.radians(params.rotation_deg)
        cos, sin = math.cos(angle) / params.scale, math.sin(angle) / params.scale
        # affine_grid maps output to input coordinates in [-1, 1]; a shift of s (fraction of the
        # side) moves the content by 2 s in these units.
        theta = torch.tensor(
            [[cos, -sin, -2.0 * params.shift_x], [sin, cos, -2.0 * params.shift_y]], dtype=pixels.dtype
        )[None]
        grid = F.affine_grid(theta, [1, *pixels.shape], align_corners=False)
        out = F.grid_sample(pixels[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    if params.gain != 1.0 or params.offset:
        out = out * params.gain + params.offset
    return out.clamp(0.0, 1.0)


def random_augment(
    pixels: torch.Tensor, settings: AugmentSettings, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """:func:`draw_params` then :func:`apply_augment`."""
    return apply_augment(pixels, draw_params(settings, generator=generator))


__all__ = ["AugmentParams", "AugmentSettings", "apply_augment", "draw_params", "random_augment"]
