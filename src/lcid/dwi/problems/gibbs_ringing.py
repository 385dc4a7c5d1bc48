"""Gibbs ringing: oscillations next to sharp edges from truncated k-space sampling.

The ringing is measured as what DIPY's ``gibbs_removal`` (local subvoxel shifts, Kellner
et al. 2016, MRM 76:1574) takes out of the b0: ``D = b0 - unring(b0)``. Noise also leaves a
little in ``D``, everywhere; ringing only near edges. So the ringing amplitude is

    A = sqrt(2 * (rms(D at edges)^2 - rms(D in the interior)^2)) / edge step

the peak amplitude of an oscillation with that RMS, as a fraction of the object's edge step.
A sharp step sampled without a k-space filter rings with about 9 % overshoot (the Gibbs
constant); windowed (filtered) acquisitions ring much less.

Only a few slices across the object are analysed, cropped to the object: ringing is an
in-plane property of the acquisition and the unringing costs ~0.1 s per slice.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lcid.dwi.context import CheckContext
from lcid.dwi.finding import Finding
from lcid.dwi.severity import confidence, grade
from lcid.io.scan import DWIScan

PROBLEM = "gibbs_ringing"
#: Slices analysed, spread over the slices where the object is at least 60 % of its widest (away from the partial-volume ends).
N_SLICES = 4
#: Voxels within this in-plane distance of the object boundary (either side) form the edge band.
EDGE_BAND = 2
#: Voxels deeper than this inside the object give the noise-only reference.
INTERIOR_DEPTH = 5
#: Fewest voxels in the edge band and in the interior for a measurement.
MIN_VOXELS = 100


def detect(scan: DWIScan, context: CheckContext) -> Finding:
    """Measure the ringing amplitude at the object's edges in the b0.

    Metrics: ``ringing_amplitude`` (graded, fraction of the edge step), ``edge_step``
    (signal units), ``rms_edge`` and ``rms_interior`` (fractions of the step) and
    ``slices`` analysed. ``evidence`` holds the analysed b0 slices and the removed ringing.
    """
    result = ringing_amplitude(context.b0, context.mask)
    if result is None:
        return Finding(problem=PROBLEM, applicable=False, metrics={"reason": "object too small to measure edges"})
    amplitude = result["ringing_amplitude"]
    evidence = {k: result.pop(k) for k in ("image", "ringing")}
    slices = result.pop("slices")
    return Finding(
        problem=PROBLEM,
        severity=grade(amplitude, PROBLEM),
        confidence=confidence(amplitude, PROBLEM),
        metrics={**result, "slices_analysed": slices},
        evidence=evidence,
    )


def ringing_amplitude(b0: np.ndarray, mask: np.ndarray, *, n_slices: int = N_SLICES) -> dict | None:
    """Ringing amplitude at the mask's in-plane edges of a 3D image.

    Parameters
    ----------
    b0
        ``(X, Y, Z)`` image; slices are along the last axis.
    mask
        ``(X, Y, Z)`` bool object mask.

    Returns
    -------
    dict or None
        ``ringing_amplitude`` (fraction of the edge step), ``edge_step``, ``rms_edge``,
        ``rms_interior``, ``slices`` (indices), ``image`` and ``ringing`` (the cropped
        ``(x, y, n_slices)`` slices and ``b0 - unring(b0)``); None when the object has too
        few edge or interior voxels.
    """
    from dipy.denoise.gibbs import gibbs_removal

    area = mask.sum(axis=(0, 1))
    if area.max() == 0:
        return None
    candidates = np.flatnonzero(area >= 0.6 * area.max())
    slices = np.unique(candidates[np.linspace(0, len(candidates) - 1, min(n_slices, len(candidates))).astype(int)])
    box = ndimage.binary_dilation(mask[:, :, slices].any(axis=2), iterations=2 * INTERIOR_DEPTH)
    xs, ys = np.flatnonzero(box.any(axis=1)), np.flatnonzero(box.any(axis=0))
    crop = (slice(xs[0], xs[-1] + 1), slice(ys[0], ys[-1] + 1), slices)
    image = b0[crop].astype(np.float64)
    obj = mask[crop]
    unrung = gibbs_removal(image, slice_axis=2, n_points=3, num_processes=1, inplace=False)
    ringing = image - unrung
    inside = np.stack([ndimage.distance_transform_edt(obj[..., i]) for i in range(obj.shape[2])], axis=-1)
    outside = np.stack([ndimage.distance_transform_edt(~obj[..., i]) for i in range(obj.shape[2])], axis=-1)
    edge = ((inside > 0) & (inside <= EDGE_BAND)) | ((outside > 0) & (outside <= EDGE_BAND))
    interior = inside > INTERIOR_DEPTH
    if edge.sum() < MIN_VOXELS or interior.sum() < MIN_VOXELS:
        return None
    step = float(
        np.median(image[(inside > 1) & (inside <= 4)]) - np.median(image[(outside > 2) & (outside <= 5)])
    )
    if step <= 0:
        return None
    rms_edge = float(np.sqrt(np.mean(ringing[edge] ** 2)))
    rms_interior = float(np.sqrt(np.mean(ringing[interior] ** 2)))
    amplitude = float(np.sqrt(2.0 * max(rms_edge**2 - rms_interior**2, 0.0))) / step
    return {
        "ringing_amplitude": amplitude,
        "edge_step": step,
        "rms_edge": rms_edge / step,
        "rms_interior": rms_interior / step,
        "slices": [int(z) for z in slices],
        "image": image.astype(np.float32),
        "ringing": ringing.astype(np.float32),
    }
