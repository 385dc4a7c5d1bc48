"""Preprocessing as MONAI transform chains, usable on their own.

3D: skull-strip with a mask, reorient to RAS, resample to a voxel size, pad/crop to a shape, background 0,
min-max to [0, 1]. 2D: pad to a square, resize, min-max to [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def volume_transform(
    *,
    voxel_mm: Sequence[float] = (1.0, 1.0, 1.0),
    shape: Sequence[int] = (128, 128, 128),
):
    """Chain for dictionaries ``{"image": MetaTensor (1, X, Y, Z), "mask": MetaTensor (1, X, Y, Z)}``.

    Both entries carry their affine (``MetaTensor(array, affine=...)``); the result's
    ``"image"`` is ``(1, *shape)`` at ``voxel_mm`` spacing, zero outside the mask, in [0, 1].
    """
    from monai.transforms import (
        Compose,
        CropForegroundd,
        MaskIntensityd,
        Orientationd,
        ResizeWithPadOrCropd,
        ScaleIntensityd,
        Spacingd,
    )

    keys = ("image", "mask")
    return Compose(
        [
            MaskIntensityd(keys="image", mask_key="mask"),
            # One orientation for all sources, so a model never learns left-right/up-down flipped copies.
            Orientationd(keys=keys, axcodes="RAS"),
            Spacingd(keys=keys, pixdim=tuple(float(v) for v in voxel_mm), mode=("bilinear", "nearest")),
            CropForegroundd(keys=keys, source_key="mask", allow_smaller=True),
            ResizeWithPadOrCropd(keys=keys, spatial_size=tuple(int(s) for s in shape)),
            MaskIntensityd(keys="image", mask_key="mask"),  # interpolation leaks: background 0 again
            ScaleIntensityd(keys="image", minv=0.0, maxv=1.0),
        ]
    )


def image_transform(*, size: int = 32):
    """Chain for a 2D image ``(1, H, W)``: pad to ``size`` if smaller, pad to square, resize, [0, 1]."""
    from monai.transforms import Compose, Lambda, Resize, ScaleIntensity, SpatialPad

    def square(image: torch.Tensor) -> torch.Tensor:
        side = max(image.shape[1:])
        return SpatialPad(spatial_size=(side, side))(image)

    return Compose(
        [
            SpatialPad(spatial_size=(size, size)),
            Lambda(square),
            Resize(spatial_size=(size, size), mode="area"),
            ScaleIntensity(minv=0.0, maxv=1.0),
        ]
    )


def brain_volumes(data: np.ndarray, bvals: np.ndarray, affine: np.ndarray, *, mask: np.ndarray | None = None):
    """b0 and mean-DWI volumes of a diffusion series with their brain mask.

    Parameters
    ----------
    data
        ``(X, Y, Z, N)`` diffusion series.
    bvals
        ``(N,)`` b-values in s/mm²; volumes below 50 s/mm² count as b0.
    affine
        ``(4, 4)`` voxel-to-mm affine.
    mask
        Brain mask ``(X, Y, Z)``; computed with :func:`lcid.dwi.mask.foreground_mask` if absent.

    Returns
    -------
    list of dict
        ``{"image", "mask"}`` MetaTensors ``(1, X, Y, Z)`` for ``b0`` and ``mean_dwi``, ready for
        :func:`volume_transform`.
    """
    from monai.data import MetaTensor

    from lcid.dwi.mask import foreground_mask

    low = bvals < 50
    b0 = data[..., low].mean(axis=-1) if low.any() else data[..., 0]
    dwi = data[..., ~low].mean(axis=-1) if (~low).any() else b0
    if mask is None:
        mask = foreground_mask(b0)
    out = []
    for volume in (b0, dwi):
        out.append(
            {
                "image": MetaTensor(torch.as_tensor(volume[None], dtype=torch.float32), affine=torch.as_tensor(affine)),
                "mask": MetaTensor(torch.as_tensor(mask[None].astype(np.float32)), affine=torch.as_tensor(affine)),
            }
        )
    return out
