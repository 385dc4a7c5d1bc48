"""Foreground (brain or phantom) mask of a diffusion series."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def foreground_mask(b0: np.ndarray) -> np.ndarray:
    """Brain/object mask from a mean b0 image, shape ``(X, Y, Z)`` -> bool ``(X, Y, Z)``.

    Uses DIPY's ``median_otsu`` (median filter + Otsu threshold, largest component). When
    that gives an implausible mask (empty, or nearly the whole field of view, as can happen
    with phantoms and tightly cropped scans) it falls back to a plain Otsu threshold of the
    smoothed image with holes filled.
    """
    from dipy.segment.mask import median_otsu

    b0 = np.asarray(b0, dtype=np.float32)
    if b0.ndim != 3:
        raise ValueError(f"b0 must be 3D, got shape {b0.shape}")
    # Planes thinner than the median filter make median_otsu degenerate; keep radius small.
    radius = 2 if min(b0.shape) >= 8 else 1
    try:
        _, mask = median_otsu(b0, median_radius=radius, numpass=2)
    except Exception:  # noqa: BLE001 - DIPY raises assorted errors on degenerate input
        mask = np.zeros(b0.shape, bool)
    fraction = float(mask.mean())
    if fraction < 0.005 or fraction > 0.9:
        mask = _otsu_fallback(b0)
    return mask.astype(bool)


def _otsu_fallback(b0: np.ndarray) -> np.ndarray:
    from skimage.filters import threshold_otsu

    smooth = ndimage.gaussian_filter(b0, 1.0)
    if not np.any(smooth > smooth.min()):
        return np.zeros(b0.shape, bool)
    mask = smooth > threshold_otsu(smooth)
    mask = ndimage.binary_opening(mask, iterations=1)
    labels, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum(mask, labels, range(1, n + 1))
        mask = labels == (int(np.argmax(sizes)) + 1)
    return ndimage.binary_fill_holes(mask)
