"""Spike (herringbone) artifacts: isolated bright points in a slice's k-space.

A spike in the raw k-space of one slice puts a stripe pattern over that slice; in the 2D
Fourier transform of the magnitude slice it is a single point far above (a) the same
k-point in the other volumes of that slice (as AFNI/MRIQC spike counts compare each slice
with its time series) and (b) its neighbouring k-points. Each (volume, slice) is scored by
the largest ``min(a, b)`` over the outer k-space, where anatomy no longer dominates.

For pure noise the spectrum magnitude is Rayleigh-distributed, so the probability that a
k-point exceeds ``t`` times its expected value is ``exp(-pi t^2 / 4)``: ``t = 6`` keeps the
chance of a false spike below 1e-12 per point (below 1e-5 for a whole 128x128x82x17 series).

Magnitude on the shared scale: fraction of (volume, slice) pairs with a spike.
"""

from __future__ import annotations

import numpy as np
from scipy import fft, ndimage

from lcid.dwi.context import CheckContext
from lcid.dwi.finding import Finding
from lcid.dwi.severity import confidence, grade
from lcid.io.scan import DWIScan

PROBLEM = "spikes"
#: A k-point this many times above both references is a spike (see the module docstring).
SPIKE_RATIO = 6.0
#: k-points with max(|kx|, |ky|) above this (cycles/voxel, Nyquist 0.5) are searched; the
#: centre holds the anatomy, whose contrast changes between volumes.
MIN_FREQUENCY = 0.125
#: Side of the square k-space neighbourhood of the local reference (points).
LOCAL_WINDOW = 5


def detect(scan: DWIScan, context: CheckContext) -> Finding:
    """Find slices whose k-space holds a spike.

    Metrics: ``spiked_pairs``, ``spiked_fraction`` (graded), ``max_spike_ratio`` and
    ``threshold``. ``where.pairs`` lists ``[volume, slice]``; ``evidence["score"]`` is the
    ``(volumes, slices)`` spike-ratio map.
    """
    score = spike_scores(scan.data, slice_axis=context.slice_axis)
    pairs = np.argwhere(score > SPIKE_RATIO)
    fraction = float(len(pairs)) / score.size
    return Finding(
        problem=PROBLEM,
        severity=grade(fraction, PROBLEM),
        confidence=confidence(fraction, PROBLEM),
        metrics={
            "spiked_pairs": int(len(pairs)),
            "spiked_fraction": fraction,
            "max_spike_ratio": float(score.max()),
            "threshold": SPIKE_RATIO,
        },
        where={
            "volumes": sorted({int(v) for v, _ in pairs}),
            "slices": sorted({int(z) for _, z in pairs}),
            "pairs": [[int(v), int(z)] for v, z in pairs],
        },
        evidence={"score": score},
    )


def spike_scores(data: np.ndarray, *, slice_axis: int = 2) -> np.ndarray:
    """Spike ratio of each (volume, slice).

    Parameters
    ----------
    data
        ``(X, Y, Z, N)`` magnitude signal.
    slice_axis
        The voxel axis of the acquired slices.

    Returns
    -------
    numpy.ndarray
        ``(N, slices)``: the largest, over outer k-space, of the smaller of (a) the ratio to
        the mean of all volumes at that k-point with the largest left out, and (b) the
        ratio to the mean of the neighbouring k-points. About 2-4 for clean data.
    """
    data = np.moveaxis(data, slice_axis, 2)
    nx, ny, nz, nv = data.shape
    # The magnitude slice is real: its spectrum is Hermitian, so half of it (rfft2) suffices.
    spec = np.empty((nv, nz, nx, ny // 2 + 1), np.float32)
    for v in range(nv):
        spec[v] = np.abs(fft.rfft2(np.moveaxis(data[..., v], 2, 0), axes=(1, 2), workers=1))
    kx = np.abs(fft.fftfreq(nx))[:, None]
    ky = np.abs(fft.rfftfreq(ny))[None, :]
    outer = np.maximum(kx, ky) > MIN_FREQUENCY
    floor = spec[..., outer].mean(axis=-1)
    spec /= np.maximum(floor, np.finfo(np.float32).tiny)[:, :, None, None]
    if nv > 1:
        # Mean over volumes with the largest dropped: one spiking volume cannot raise its own
        # reference (a median over volumes costs ~5x more for the same robustness to one spike).
        others = (spec.sum(axis=0) - spec.max(axis=0)) / (nv - 1)
    else:
        others = np.full(spec.shape[1:], np.inf, np.float32)
    window = LOCAL_WINDOW
    local = ndimage.uniform_filter1d(spec, window, axis=2, mode="wrap")
    local = ndimage.uniform_filter1d(local, window, axis=3, mode="nearest")
    local = (local * window * window - spec) / (window * window - 1)  # neighbours only
    tiny = np.finfo(np.float32).tiny
    ratio = np.minimum(spec / np.maximum(others, tiny)[None], spec / np.maximum(local, tiny))
    ratio = np.where(outer, ratio, 0.0)
    return ratio.reshape(nv, nz, -1).max(axis=-1)
