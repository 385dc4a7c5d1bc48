"""Is a generated volume head-shaped? An objective check against the masks of real volumes.

Each volume ``(C, *S)`` (channel mean, intensities >= 0) is smoothed (Gaussian, ``sigma``
voxels), thresholded at ``threshold`` x its maximum and hole-filled (``scipy.ndimage``); that is
its foreground mask. It **passes** when

- one connected component holds at least ``min_main_fraction`` of the foreground (one head, not
  scattered blobs or speckle), and
- that component's volume lies within the range of the reference (real) masks' volumes, widened by
  ``volume_margin`` on each side (neither an empty volume nor a box filled with haze), and
- its outline overlaps some reference mask with a Dice of at least ``min_dice``.

Its **best Dice** is the highest Dice overlap (MONAI ``compute_dice``) of the main component with
any reference mask: how close its outline comes to some real head. Real volumes are centred (the
preprocessing crops to the mask and pads), so no registration is done.

Defaults (``threshold`` 0.2, ``sigma`` 1 voxel, ``min_main_fraction`` 0.95, ``volume_margin`` 0.1,
``min_dice`` 0.75) were set on the real training volumes of the 3D run of docs/synth.md (all pass;
their main components hold >= 0.98 of the foreground) and on samples of an earlier model: a lower
threshold lets a faint decoder haze around a sample join its mask, a higher one lets a noise-like
checkerboard pass. Held-out real volumes score a best Dice of 0.82-0.96 against the training
masks, uniform noise about 0.6.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lcid.errors import InputError


@dataclass(frozen=True)
class HeadShape:
    """Per-volume results of :func:`head_shape`: arrays of length N."""

    main_fraction: np.ndarray
    volume_voxels: np.ndarray
    in_range: np.ndarray
    best_dice: np.ndarray
    passed: np.ndarray


def head_mask(volume: np.ndarray, *, threshold: float = 0.2, sigma: float = 1.0) -> tuple[np.ndarray, float]:
    """Main connected component of the foreground of ``volume`` ``(C, *S)`` and its share of the foreground.

    Returns an all-false mask and 0 for an empty (or constant-zero) volume.
    """
    from scipy import ndimage

    image = np.asarray(volume, dtype=np.float64).mean(0)
    smooth = ndimage.gaussian_filter(image, sigma) if sigma > 0 else image
    top = float(smooth.max())
    if top <= 0:
        return np.zeros(image.shape, dtype=bool), 0.0
    foreground = ndimage.binary_fill_holes(smooth > threshold * top)
    labels, count = ndimage.label(foreground)
    if count == 0:
        return np.zeros(image.shape, dtype=bool), 0.0
    sizes = np.bincount(labels.ravel())[1:]
    main = int(sizes.argmax()) + 1
    return labels == main, float(sizes.max() / sizes.sum())


def _masks(volumes: torch.Tensor | np.ndarray, threshold: float, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    volumes = np.asarray(volumes.detach().cpu() if isinstance(volumes, torch.Tensor) else volumes)
    if volumes.ndim != 5:
        raise InputError(f"head-shape check needs 3D volumes (N, C, X, Y, Z), got shape {tuple(volumes.shape)}")
    pairs = [head_mask(v, threshold=threshold, sigma=sigma) for v in volumes]
    return np.stack([m for m, _ in pairs]), np.array([f for _, f in pairs])


def head_shape(
    volumes: torch.Tensor | np.ndarray,
    reference: torch.Tensor | np.ndarray,
    *,
    threshold: float = 0.2,
    sigma: float = 1.0,
    min_main_fraction: float = 0.95,
    volume_margin: float = 0.1,
    min_dice: float = 0.75,
) -> HeadShape:
    """Score ``volumes`` ``(N, C, X, Y, Z)`` against the masks of real ``reference`` volumes ``(R, C, X, Y, Z)``.

    See the module docstring for the test. Raises :class:`~lcid.errors.InputError` for non-3D input,
    mismatched shapes or a reference without any foreground.
    """
    from monai.metrics import compute_dice

    if tuple(np.shape(volumes))[2:] != tuple(np.shape(reference))[2:]:
        raise InputError(f"volumes {tuple(np.shape(volumes))} and reference {tuple(np.shape(reference))} differ in shape")
    masks, fractions = _masks(volumes, threshold, sigma)
    ref_masks, _ = _masks(reference, threshold, sigma)
    ref_sizes = ref_masks.reshape(len(ref_masks), -1).sum(1)
    if len(ref_sizes) == 0 or ref_sizes.max() == 0:
        raise InputError("the reference volumes have no foreground to compare head shapes with")
    low, high = ref_sizes.min() * (1 - volume_margin), ref_sizes.max() * (1 + volume_margin)
    sizes = masks.reshape(len(masks), -1).sum(1)
    ref = torch.from_numpy(ref_masks[:, None]).float()
    best = []
    for mask in masks:
        pred = torch.from_numpy(mask[None, None]).float().expand_as(ref)
        dice = compute_dice(pred, ref, include_background=True, ignore_empty=False)
        best.append(float(torch.nan_to_num(dice, nan=0.0).max()))
    in_range = (sizes >= low) & (sizes <= high)
    best_dice = np.array(best)
    return HeadShape(
        main_fraction=fractions,
        volume_voxels=sizes,
        in_range=in_range,
        best_dice=best_dice,
        passed=in_range & (fractions >= min_main_fraction) & (best_dice >= min_dice),
    )


def head_shape_metrics(samples: torch.Tensor, real: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """``head_shape_pass`` / ``head_shape_dice`` of ``samples`` and, as the baseline, of ``real`` held-out
    volumes (``..._real``), both against the masks of the ``reference`` (real training) volumes.

    ``head_shape_pass`` is the share of volumes that pass; ``head_shape_dice`` the mean best Dice.
    """
    out: dict[str, float] = {}
    for suffix, volumes in (("", samples), ("_real", real)):
        result = head_shape(volumes, reference)
        out[f"head_shape_pass{suffix}"] = float(result.passed.mean())
        out[f"head_shape_dice{suffix}"] = float(result.best_dice.mean())
    return out


__all__ = ["HeadShape", "head_mask", "head_shape", "head_shape_metrics"]
