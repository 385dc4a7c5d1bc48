"""Gibbs ringing: k-space truncation, then zero-filling back to the original matrix.

The in-plane k-space of every slice keeps only its central fraction ``p`` along both
in-plane axes (an acquisition with a smaller matrix), and is zero-filled back to the
original size, which leaves oscillations at sharp edges. The ringing amplitude (first
overshoot at an ideal step, fraction of the step height) of a plain truncation saturates
near 9% (Gibbs' constant); to span the shared scale up to its severe range the ringing
component ``T(I) − I`` is weighted by a gain ``g`` (``g > 1`` emulates the stronger edge
ringing of partial-Fourier zero-filled reconstructions). The realised magnitude is the
overshoot of this exact operator applied to a discrete step along the phase-encoding axis.

Written by hand: TorchIO has no truncation/zero-fill transform (its ``RandomBlur`` is a
Gaussian) and DIPY only removes Gibbs ringing.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from lcid.io.scan import DWIScan
from lcid.simulate.anatomy import pe_axis, slice_axis
from lcid.simulate.magnitude import draw_magnitude


def sample(rng: np.random.Generator, scan: DWIScan, severity: str) -> dict:
    """Draw the kept k-space fraction and the gain that gives the drawn amplitude."""
    target = draw_magnitude(rng, "gibbs_ringing", severity)
    keep = float(rng.uniform(0.4, 0.7))
    n = scan.shape[pe_axis(scan)]
    base = step_overshoot(n, keep=keep, gain=1.0)
    gain = target / base
    return {
        "ringing_amplitude": round(step_overshoot(n, keep=keep, gain=gain), 6),
        "kspace_fraction_kept": round(keep, 6),
        "gain": round(gain, 6),
        "axes": [a for a in range(3) if a != slice_axis(scan)],
    }


def apply(scan: DWIScan, params: dict) -> tuple[DWIScan, dict]:
    """Truncate and zero-fill the in-plane k-space of every volume; returns (scan, where)."""
    axes = tuple(int(a) for a in params["axes"])
    keep, gain = float(params["kspace_fraction_kept"]), np.float32(params["gain"])
    ringing = truncate(scan.data, axes=axes, keep=keep) - scan.data
    data = np.abs(scan.data + gain * ringing).astype(np.float32)
    return scan.replace(data=data), {"volumes": list(range(scan.n_volumes))}


def truncate(data: np.ndarray, *, axes: tuple[int, ...], keep: float) -> np.ndarray:
    """Zero all but the central ``keep`` fraction of k-space along ``axes``; same shape, real part."""
    spectrum = scipy.fft.fftn(data.astype(np.float32, copy=False), axes=axes)
    for axis in axes:
        n = data.shape[axis]
        freq = np.abs(scipy.fft.fftfreq(n) * n)
        window = (freq <= keep * n / 2).astype(np.float32)
        shape = [1] * data.ndim
        shape[axis] = n
        spectrum *= window.reshape(shape)
    return scipy.fft.ifftn(spectrum, axes=axes).real.astype(np.float32)


def step_overshoot(n: int, *, keep: float, gain: float) -> float:
    """First overshoot (fraction of the step) of ``x + gain · (T(x) − x)`` on a length-``n`` box."""
    box = np.zeros(n, np.float32)
    box[n // 4 : 3 * n // 4] = 1.0
    out = box + gain * (truncate(box, axes=(0,), keep=keep) - box)
    return float(out.max() - 1.0)
