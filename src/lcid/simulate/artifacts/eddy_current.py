"""Eddy-current distortion: a per-volume affine along the phase-encoding axis.

The field left by the diffusion gradient is, to first order, linear in space, so each
diffusion-weighted volume is displaced along phase encoding (PE) by

    d(r) = t + sᵀ (r − c)      (voxels; r voxel coordinates, c the object's centroid)

a shift ``t``, a PE scaling ``s[pe]`` and two shears (Jezzard et al. 1998; Andersson &
Sotiropoulos 2016). The coefficients depend linearly on the gradient direction ``g`` and
grow with b: ``(t, s) = (b / b_max) · K g`` with a random 4x3 matrix ``K``. b0 volumes are
untouched. ``K`` is scaled so the largest |d| inside the object over all volumes equals the
drawn magnitude (voxels). Intensities are divided by the Jacobian ``1 + s[pe]`` (signal
piles up where the image is compressed), as in a real EPI distortion.

Written by hand because neither TorchIO nor DIPY has a gradient-dependent PE-only affine.
"""

from __future__ import annotations

import numpy as np

from lcid.dwi.gradients import b0_mask
from lcid.io.scan import DWIScan
from lcid.simulate.anatomy import object_mask, pe_axis
from lcid.simulate.magnitude import draw_magnitude

#: Volumes displaced by at least this much (voxels) are listed in ``where``.
VISIBLE_VOXELS = 0.5


def sample(rng: np.random.Generator, scan: DWIScan, severity: str) -> dict:
    """Draw ``K`` and scale it to the drawn largest displacement (voxels)."""
    magnitude = draw_magnitude(rng, "eddy_current", severity)
    pe = pe_axis(scan)
    mask = object_mask(scan)
    centre = np.argwhere(mask).mean(0) if mask.any() else (np.array(scan.shape[:3]) - 1) / 2
    # Shift and scale/shear terms of comparable size at the object's edge.
    extent = np.maximum(np.ptp(np.argwhere(mask), axis=0) / 2, 1.0) if mask.any() else np.array(scan.shape[:3]) / 2
    k = rng.normal(size=(4, 3))
    k[1:] /= extent[:, None]
    coeffs = _coefficients(scan, k)
    worst = float(np.abs(_displacements(coeffs, np.argwhere(mask) - centre)).max()) if mask.any() else 1.0
    k *= magnitude / max(worst, 1e-9)
    coeffs = _coefficients(scan, k)
    per_volume = np.abs(_displacements(coeffs, np.argwhere(mask) - centre)).max(0) if mask.any() else np.zeros(scan.n_volumes)
    return {
        "max_displacement_voxels": round(float(per_volume.max()), 6),
        "pe_axis": pe,
        "center_voxels": centre.round(4).tolist(),
        "k_matrix": k.round(9).tolist(),
        "per_volume_max_voxels": per_volume.round(4).tolist(),
    }


def apply(scan: DWIScan, params: dict) -> tuple[DWIScan, dict]:
    """Distort each diffusion-weighted volume along PE; returns (scan, where)."""
    pe = int(params["pe_axis"])
    centre = np.asarray(params["center_voxels"], dtype=float)
    coeffs = _coefficients(scan, np.asarray(params["k_matrix"], dtype=float))
    grid = np.indices(scan.shape[:3], dtype=np.float32)
    rel = [grid[a] - np.float32(centre[a]) for a in range(3)]
    data = scan.data.copy()
    for v in np.flatnonzero(~b0_mask(scan.bvals)):
        t, s = coeffs[v, 0], coeffs[v, 1:]
        if not np.any(coeffs[v]):
            continue
        # Output PE position y' = y + t + s·(r - c); solve for the source y.
        others = sum(s[a] * rel[a] for a in range(3) if a != pe)
        source = (rel[pe] - t - others) / np.float32(1 + s[pe]) + np.float32(centre[pe])
        data[..., v] = resample_along(scan.data[..., v], source, axis=pe) / np.float32(1 + s[pe])
    volumes = [int(v) for v, d in enumerate(params["per_volume_max_voxels"]) if d >= VISIBLE_VOXELS]
    return scan.replace(data=data), {"volumes": volumes}


def resample_along(volume: np.ndarray, source: np.ndarray, *, axis: int) -> np.ndarray:
    """Linear interpolation of ``volume`` at positions ``source`` along one ``axis``.

    Samples outside the grid are zero (fading linearly within one voxel of the edge). Like
    ``scipy.ndimage.map_coordinates(order=1, cval=0)`` with the other coordinates on the
    grid, but a 1D gather is several times faster on whole-brain volumes.
    """
    n = volume.shape[axis]
    low = np.floor(source)
    weight = (source - low).astype(np.float32)
    low = low.astype(np.int64)
    out = np.zeros(volume.shape, np.float32)
    for index, w in ((low, 1.0 - weight), (low + 1, weight)):
        inside = (index >= 0) & (index < n)
        values = np.take_along_axis(volume, np.clip(index, 0, n - 1), axis=axis)
        out += np.where(inside, values * w, 0.0).astype(np.float32)
    return out


def _coefficients(scan: DWIScan, k: np.ndarray) -> np.ndarray:
    """Per-volume (t, s_x, s_y, s_z), shape ``(N, 4)``: ``(b / b_max) · K g``; zero for b0."""
    bvals = np.asarray(scan.bvals, dtype=float)
    weight = np.where(b0_mask(bvals), 0.0, bvals / max(float(bvals.max()), 1.0))
    norms = np.linalg.norm(scan.bvecs, axis=1, keepdims=True)
    g = np.where(norms > 1e-6, scan.bvecs / np.maximum(norms, 1e-6), 0.0)
    return weight[:, None] * (g @ k.T)


def _displacements(coeffs: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """Displacement (voxels) at points ``rel`` ``(M, 3)`` for each volume: ``(M, N)``."""
    return coeffs[:, 0][None, :] + rel @ coeffs[:, 1:].T
