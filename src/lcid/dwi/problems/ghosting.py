"""N/2 (Nyquist) ghosting: a copy of the object shifted by half the field of view.

Ghost-to-signal ratio as MRIQC's ``gsr`` (Giannelli et al. 2010, JACMP 11:170; Esteban et
al. 2017): the object mask shifted by FOV/2 along phase encoding, minus the (dilated) object,
is the ghost region; the rest of the background is the non-ghost region;

    GSR = (mean(ghost) - mean(non-ghost)) / mean(object)

Subtracting the non-ghost mean removes the noise floor. The regions are built from a *head*
mask (brain mask plus the scalp and skull signal connected to it), as MRIQC does, so the
scalp outside a brain mask is not mistaken for a ghost. Computed on the mean b0 (the
graded value) and on every volume (to name the affected volumes).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lcid.dwi.context import CheckContext
from lcid.dwi.finding import Finding
from lcid.dwi.severity import SCALE, confidence, grade
from lcid.io.scan import DWIScan

PROBLEM = "ghosting"
#: The object mask is dilated by this many voxels so its blurred edge is not counted as ghost.
DILATION = 2
#: Voxels brighter than this fraction of the median object signal (after smoothing) and
#: connected to the object belong to the head; fainter ghosts stay outside.
HEAD_FRACTION = 0.1
#: Fewest voxels in the ghost and non-ghost regions for a measurement.
MIN_REGION_VOXELS = 50


def detect(scan: DWIScan, context: CheckContext) -> Finding:
    """Grade the N/2 ghost-to-signal ratio of the b0 along the phase-encoding axis.

    Metrics: ``gsr_b0`` (graded), ``gsr_max_volume``, ``pe_axis`` used, region sizes, and
    ``background_zero_fraction`` (a zero-filled background hides ghosts: then GSR is a lower
    bound).
    """
    pe_axis = 1 if context.pe_axis is None else int(context.pe_axis)
    head = head_mask(context.b0, context.mask)
    regions = ghost_regions(head, context.mask, pe_axis=pe_axis)
    if regions is None:
        return Finding(
            problem=PROBLEM,
            applicable=False,
            metrics={"pe_axis": pe_axis, "reason": "object fills the field of view: no ghost region outside it"},
        )
    ghost, nonghost = regions
    gsr_b0 = ghost_to_signal(context.b0, context.mask, ghost, nonghost)
    per_volume = np.array(
        [ghost_to_signal(scan.data[..., v], context.mask, ghost, nonghost) for v in range(scan.n_volumes)]
    )
    mild = SCALE[PROBLEM][0]
    volumes = [int(v) for v in np.flatnonzero(per_volume >= mild)] if gsr_b0 >= mild else []
    background = ~ndimage.binary_dilation(head, iterations=DILATION)
    return Finding(
        problem=PROBLEM,
        severity=grade(gsr_b0, PROBLEM),
        confidence=confidence(gsr_b0, PROBLEM),
        metrics={
            "gsr_b0": gsr_b0,
            "gsr_max_volume": float(np.nanmax(per_volume)),
            "pe_axis": pe_axis,
            "ghost_voxels": int(ghost.sum()),
            "nonghost_voxels": int(nonghost.sum()),
            "background_zero_fraction": float(np.mean(context.b0[background] == 0)),
        },
        where={"volumes": volumes, "slices": []},
        evidence={"gsr_per_volume": per_volume, "ghost_region": ghost},
    )


def head_mask(b0: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The whole head: ``mask`` plus connected signal above :data:`HEAD_FRACTION` of its median.

    Parameters
    ----------
    b0
        ``(X, Y, Z)`` mean b0.
    mask
        ``(X, Y, Z)`` bool brain/object mask.
    """
    level = HEAD_FRACTION * float(np.median(b0[mask])) if mask.any() else np.inf
    bright = (ndimage.gaussian_filter(b0.astype(np.float32), 1.0) > level) | mask
    labels, _ = ndimage.label(bright)
    keep = np.unique(labels[mask])
    head = np.isin(labels, keep[keep > 0])
    return ndimage.binary_fill_holes(head)


def ghost_regions(
    head: np.ndarray, mask: np.ndarray, *, pe_axis: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Ghost and non-ghost background regions, bool ``(X, Y, Z)`` each, or None when too small.

    The ghost region is the object ``mask`` rolled by half the matrix along ``pe_axis`` (both
    directions are the same roll modulo the FOV), outside the dilated ``head``; so a ghost of
    relative amplitude ``a`` gives a GSR of about ``a``. The non-ghost region is the rest of
    the background, away from the rolled head.
    """
    outside = ~ndimage.binary_dilation(head, iterations=DILATION)
    half = head.shape[pe_axis] // 2
    ghost = np.roll(mask, half, axis=pe_axis) & outside
    nonghost = outside & ~ndimage.binary_dilation(np.roll(head, half, axis=pe_axis), iterations=DILATION)
    if ghost.sum() < MIN_REGION_VOXELS or nonghost.sum() < MIN_REGION_VOXELS:
        return None
    return ghost, nonghost


def ghost_to_signal(image: np.ndarray, mask: np.ndarray, ghost: np.ndarray, nonghost: np.ndarray) -> float:
    """MRIQC's GSR of one 3D image: ``(mean ghost - mean non-ghost) / mean object``."""
    signal = float(np.mean(image[mask]))
    if signal <= 0:
        return float("nan")
    return (float(np.mean(image[ghost])) - float(np.mean(image[nonghost]))) / signal
