"""Random spatial and intensity augmentation of training images (MONAI dictionary transforms).

Configured by the recipe's ``augment`` section::

    augment: {rotate_deg: 8, scale: 0.08, flip_lr: 0.5, gamma: [0.8, 1.25], prob: 0.8}

Stage 1 draws a new augmentation of every image each time it is used; stage 2 encodes
``ldm.augment_copies`` fixed augmented copies of each image once (:func:`augmented_copies`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from lcid.errors import InputError


@dataclass(frozen=True)
class AugmentSpec:
    """How strongly to augment.

    Attributes
    ----------
    rotate_deg
        Largest rotation about each axis (degrees, uniform in ±rotate_deg).
    scale
        Largest relative zoom change (uniform in ±scale).
    flip_lr
        Probability of a left-right flip (image axis 0, the RAS x axis after preprocessing).
    gamma
        Range of the contrast gamma (``RandAdjustContrastd``; keeps [0, 1] images in [0, 1]).
    prob
        Probability of applying the affine and, separately, the contrast change.
    """

    rotate_deg: float = 8.0
    scale: float = 0.08
    flip_lr: float = 0.5
    gamma: tuple[float, float] = (0.8, 1.25)
    prob: float = 0.8

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> AugmentSpec:
        """From the recipe's ``augment`` mapping; unknown keys and bad ranges are an :class:`InputError`."""
        values = dict(values or {})
        known = {"rotate_deg", "scale", "flip_lr", "gamma", "prob"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"unknown augment settings: {', '.join(unknown)}")
        if "gamma" in values:
            gamma = tuple(float(g) for g in values["gamma"])
            if len(gamma) != 2 or not 0 < gamma[0] <= gamma[1]:
                raise InputError(f"augment gamma must be two numbers 0 < low <= high, got {values['gamma']}")
            values["gamma"] = gamma
        spec = cls(**values)
        for name in ("flip_lr", "prob"):
            if not 0.0 <= float(getattr(spec, name)) <= 1.0:
                raise InputError(f"augment {name} must be a probability in [0, 1], got {getattr(spec, name)}")
        if spec.rotate_deg < 0 or not 0 <= spec.scale < 1:
            raise InputError("augment rotate_deg must be >= 0 and scale in [0, 1)")
        return spec


def augmentation(spec: AugmentSpec, *, spatial_dims: int, seed: int = 0):
    """A seeded MONAI chain for ``{"image": (C, *S)}`` in [0, 1]: affine, left-right flip, contrast.

    Zero padding outside the field of view keeps the background 0.
    """
    from monai.transforms import Compose, RandAdjustContrastd, RandAffined, RandFlipd

    angle = math.radians(spec.rotate_deg)
    rotate = (angle,) * (3 if spatial_dims == 3 else 1)
    transform = Compose(
        [
            RandAffined(
                keys="image",
                prob=spec.prob,
                rotate_range=rotate,
                scale_range=(spec.scale,) * spatial_dims,
                mode="bilinear",
                padding_mode="zeros",
            ),
            RandFlipd(keys="image", prob=spec.flip_lr, spatial_axis=0),
            RandAdjustContrastd(keys="image", prob=spec.prob, gamma=spec.gamma),
        ]
    )
    transform.set_random_state(seed=seed)
    return transform


def apply(transform, image: torch.Tensor) -> torch.Tensor:
    """One augmented draw of ``image`` ``(C, *S)`` as a plain float tensor clipped to [0, 1]."""
    from monai.utils import convert_to_tensor

    out = transform({"image": image})["image"]
    return convert_to_tensor(out, track_meta=False).float().clamp(0.0, 1.0)


def augmented_copies(images: torch.Tensor, spec: AugmentSpec, *, copies: int, seed: int = 0) -> torch.Tensor:
    """``images`` ``(N, C, *S)`` followed by ``copies`` augmented draws of each: ``(N * (1 + copies), C, *S)``."""
    if copies < 0:
        raise InputError(f"augment_copies must be >= 0, got {copies}")
    transform = augmentation(spec, spatial_dims=images.ndim - 2, seed=seed)
    extra = [apply(transform, image) for _ in range(copies) for image in images]
    return torch.cat([images, torch.stack(extra)]) if extra else images
