"""Low resolution: larger (and possibly anisotropic) voxels, as from a smaller acquisition matrix.

In-plane, each coarsened axis keeps only the central ``n'`` of its ``n`` k-space samples
(FFT, truncation, inverse FFT on ``n'`` points): the image a scanner gives with the same
field of view and a smaller matrix. Along the slice axis (2D multi-slice EPI, where slice
thickness is set by the excitation, not by k-space), each new slice is the average of the
old slices under its thicker slice profile (a box of ``n / n'`` old slices); a k-space
truncation there would also wrap the top of the head into the bottom slices. Either way
the field of view is kept: new voxel ``i`` is centred at ``(i + 1/2) · n / n' - 1/2`` in old
voxel units, and the affine is updated to match. Two modes: ``isotropic`` (all axes to
about the drawn edge) and ``thick_slices`` (the slice axis only). The realised magnitude
is the largest new edge (mm).

Hand-written with ``scipy.fft`` because TorchIO's ``Resample`` interpolates in image space
(a different blur than a truncated acquisition) and neither it nor DIPY keeps the FOV exact
for arbitrary integer matrix sizes.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from lcid.dwi.severity import magnitude_range
from lcid.errors import InputError
from lcid.io.scan import DWIScan
from lcid.simulate.anatomy import reslice_timing, slice_axis
from lcid.simulate.magnitude import draw_magnitude


def sample(rng: np.random.Generator, scan: DWIScan, severity: str) -> dict:
    """Draw the mode and the new matrix size of each axis."""
    target = draw_magnitude(rng, "low_resolution", severity)
    low, high = magnitude_range("low_resolution", severity)
    mode = "isotropic" if rng.random() < 0.5 else "thick_slices"
    sizes = np.array(scan.shape[:3])
    voxel = np.array(scan.voxel_size_mm)
    axes = [0, 1, 2] if mode == "isotropic" else [slice_axis(scan)]
    new = sizes.copy()
    for a in axes:
        if voxel[a] < target:
            new[a] = max(2, int(round(sizes[a] * voxel[a] / target)))
    new_voxel = sizes * voxel / new
    if not low <= new_voxel.max() < high:
        # Rounding to whole voxels can leave the range: take the nearest matrix inside it.
        a = max(axes, key=lambda i: sizes[i] * voxel[i])
        fits = [m for m in range(2, sizes[a] + 1) if low <= sizes[a] * voxel[a] / m < high]
        if not fits or voxel.max() >= high:
            raise InputError(
                f"low_resolution {severity}: cannot reach a {low:g}-{high:g} mm voxel from "
                f"{tuple(round(v, 2) for v in voxel)} mm voxels"
            )
        new[a] = min(fits, key=lambda m: abs(sizes[a] * voxel[a] / m - target))
        new_voxel = sizes * voxel / new
    return {
        "mode": mode,
        "method": "k-space truncation",
        "old_shape": sizes.tolist(),
        "new_shape": new.astype(int).tolist(),
        "old_voxel_mm": voxel.round(6).tolist(),
        "new_voxel_mm": new_voxel.round(6).tolist(),
        "largest_voxel_mm": round(float(new_voxel.max()), 6),
    }


def apply(scan: DWIScan, params: dict) -> tuple[DWIScan, dict]:
    """Coarsen to ``new_shape`` (k-space in-plane, slice profile across) and update the
    affine; returns (scan, where)."""
    new = [int(n) for n in params["new_shape"]]
    data = scan.data
    affine = scan.affine.copy()
    sidecar = dict(scan.sidecar)
    slice_ax = slice_axis(scan)
    for axis in range(3):
        n = data.shape[axis]
        if new[axis] == n:
            continue
        ratio = n / new[axis]
        if axis == slice_ax:
            data = average_slices(data, axis=axis, size=new[axis])
        else:
            data = truncate_axis(data, axis=axis, size=new[axis])
        first_centre = 0.5 * ratio - 0.5  # new voxel 0 in old voxel units: the FOV corner stays
        affine[:3, 3] += first_centre * affine[:3, axis]
        affine[:3, axis] *= ratio
        nearest = np.clip(np.floor((np.arange(new[axis]) + 0.5) * ratio), 0, n - 1).astype(int)
        sidecar = reslice_timing(sidecar, axis=axis, slice_ax=slice_ax, old_index=nearest)
    data = np.clip(data, 0, None).astype(np.float32)
    return scan.replace(data=data, affine=affine, sidecar=sidecar), {"volumes": [], "slices": []}


def average_slices(data: np.ndarray, *, axis: int, size: int) -> np.ndarray:
    """Average ``data`` along ``axis`` into ``size`` thicker slices covering the same extent.

    New slice ``i`` covers old slices ``[i r, (i + 1) r)`` with ``r = n / size``; each old
    slice contributes by its overlap (a box slice profile). Float32 out.
    """
    n = data.shape[axis]
    edges = np.arange(size + 1) * n / size
    old = np.arange(n)
    overlap = np.clip(np.minimum(edges[1:, None], old[None, :] + 1) - np.maximum(edges[:-1, None], old[None, :]), 0, None)
    weights = (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)  # (size, n)
    moved = np.moveaxis(data.astype(np.float32, copy=False), axis, -1)
    return np.moveaxis(moved @ weights.T, -1, axis)


def truncate_axis(data: np.ndarray, *, axis: int, size: int) -> np.ndarray:
    """Keep the ``size`` lowest spatial frequencies of ``data`` along ``axis`` (same FOV).

    New sample ``i`` lies at old voxel position ``(i + 1/2) n / size - 1/2`` (the centres of
    the coarser voxels of the same field of view; a phase ramp shifts the image before the
    truncation). Intensities are preserved (the DFT is rescaled by ``size / n``). Float32 in,
    float32 out.
    """
    n = data.shape[axis]
    shift = 0.5 * n / size - 0.5
    ramp = np.exp(2j * np.pi * scipy.fft.fftfreq(n) * shift).astype(np.complex64)
    shape = [1] * data.ndim
    shape[axis] = n
    spectrum = scipy.fft.fft(data.astype(np.float32, copy=False), axis=axis) * ramp.reshape(shape)
    positive = (size + 1) // 2
    negative = size - positive
    kept = np.concatenate(
        [np.take(spectrum, np.arange(positive), axis=axis), np.take(spectrum, np.arange(n - negative, n), axis=axis)],
        axis=axis,
    )
    return (scipy.fft.ifft(kept, axis=axis).real * (size / n)).astype(np.float32)
