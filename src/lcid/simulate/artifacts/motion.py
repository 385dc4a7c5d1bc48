"""Subject motion: rigid displacement of whole volumes, or interleaved slice shifts.

Two physically distinct kinds, drawn at random:

``inter_volume``
    The head moves between volumes: chosen volumes get a rigid transform (rotation about
    the object's centroid, then translation; world mm). The largest framewise displacement
    (Power et al. 2012: Σ|Δt| + 50 mm · Σ|Δθ|) is the drawn magnitude. As on a real scanner
    the gradient table is NOT updated: the tabled b-vector stays, while the direction the
    gradient had relative to the moved anatomy is ``R⁻¹ g``; both are recorded.
``interleaved``
    The head moves during a volume acquired with interleaved slices: the slices of the second
    pass (from ``SliceTiming``, else the odd slices) are shifted in-plane relative to the
    first pass, by the drawn magnitude in voxels.

Why not TorchIO's ``Motion``: it mixes k-space segments of several rigid poses inside one
3D volume (a blur/ghost within the image), which is not how slice-by-slice EPI diffusion
motion shows, and it does not give the between-volume displacements that DWI QC measures
as framewise displacement. Rigid resampling: ``scipy.ndimage.affine_transform`` (linear,
edge voxels repeated beyond the field of view).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from lcid.io.scan import DWIScan
from lcid.simulate.anatomy import late_slices, object_mask, slice_axis
from lcid.simulate.magnitude import draw_magnitude

#: Head radius of the framewise-displacement formula (mm; Power et al. 2012).
HEAD_RADIUS_MM = 50.0


def sample(rng: np.random.Generator, scan: DWIScan, severity: str) -> dict:
    """Draw the motion of a scan (see module docstring); JSON-serialisable."""
    magnitude = draw_magnitude(rng, "motion", severity)
    n = scan.n_volumes
    n_moved = int(rng.integers(1, max(2, n // 4) + 1))
    volumes = sorted(int(v) for v in rng.choice(np.arange(1, n), size=min(n_moved, n - 1), replace=False))
    if rng.random() < 0.75:
        directions = rng.normal(size=(len(volumes), 6))
        directions[:, 3:] /= HEAD_RADIUS_MM  # radians: rotations and translations move the sphere alike
        fd = framewise_displacement(_series(n, volumes, directions))
        directions *= magnitude / float(fd.max())
        mask = object_mask(scan)
        centre_vox = np.argwhere(mask).mean(0) if mask.any() else (np.array(scan.shape[:3]) - 1) / 2
        centre = (scan.affine @ np.append(centre_vox, 1.0))[:3]
        return {
            "mode": "inter_volume",
            "max_fd_mm": round(float(framewise_displacement(_series(n, volumes, directions)).max()), 6),
            "volumes": volumes,
            "translations_mm": directions[:, :3].round(6).tolist(),
            "rotations_deg": np.degrees(directions[:, 3:]).round(6).tolist(),
            "center_mm": np.asarray(centre).round(4).tolist(),
        }
    axis = slice_axis(scan)
    in_plane = [a for a in range(3) if a != axis]
    angle = rng.uniform(0, 2 * np.pi)
    shift = np.zeros(3)
    shift[in_plane] = magnitude * np.array([np.cos(angle), np.sin(angle)])
    return {
        "mode": "interleaved",
        "shift_voxels": round(magnitude, 6),
        "volumes": volumes,
        "slice_axis": axis,
        "shifted_slices": late_slices(scan, axis),
        "shift_vector_voxels": shift.round(6).tolist(),
    }


def apply(scan: DWIScan, params: dict) -> tuple[DWIScan, dict]:
    """Move the chosen volumes (or their late slices) as ``params`` say; returns (scan, where)."""
    data = scan.data.copy()
    volumes = [int(v) for v in params["volumes"]]
    if params["mode"] == "inter_volume":
        anatomical = []
        for v, t, r in zip(volumes, params["translations_mm"], params["rotations_deg"], strict=True):
            world = rigid_matrix(t, r, params["center_mm"])
            # Output voxel x shows the input at inv(A) inv(world) A x: the head moves by `world`.
            # Beyond the field of view the nearest edge voxel is repeated: tissue that moves in
            # from outside was there (the scanner would image it), it is not a void.
            vox = np.linalg.inv(scan.affine) @ np.linalg.inv(world) @ scan.affine
            data[..., v] = ndimage.affine_transform(
                scan.data[..., v], vox[:3, :3], offset=vox[:3, 3], order=1, mode="nearest"
            )
            anatomical.append(_anatomical_bvec(scan, world, scan.bvecs[v]).round(6).tolist())
        params["tabled_bvecs"] = [scan.bvecs[v].round(6).tolist() for v in volumes]
        params["anatomical_bvecs"] = anatomical
        return scan.replace(data=np.clip(data, 0, None)), {"volumes": volumes}
    axis = int(params["slice_axis"])
    shifted = [int(s) for s in params["shifted_slices"]]
    shift2d = [params["shift_vector_voxels"][a] for a in range(3) if a != axis]
    for v in volumes:
        for s in shifted:
            index = [slice(None)] * 3
            index[axis] = s
            plane = scan.data[(*index, v)]
            data[(*index, v)] = ndimage.shift(plane, shift2d, order=1, mode="nearest")
    pairs = [[v, s] for v in volumes for s in shifted]
    return scan.replace(data=data), {"volumes": volumes, "slices": shifted, "pairs": pairs}


def rigid_matrix(translation_mm, rotation_deg, center_mm) -> np.ndarray:
    """4x4 world transform: rotate (xyz Euler, degrees) about ``center_mm``, then translate (mm)."""
    rot = Rotation.from_euler("xyz", rotation_deg, degrees=True).as_matrix()
    center = np.asarray(center_mm, dtype=float)
    matrix = np.eye(4)
    matrix[:3, :3] = rot
    matrix[:3, 3] = center - rot @ center + np.asarray(translation_mm, dtype=float)
    return matrix


def framewise_displacement(params: np.ndarray) -> np.ndarray:
    """Framewise displacement (mm) of a motion series ``(N, 6)``: translations mm, rotations rad.

    Returns ``(N,)`` with 0 for the first volume (Power et al. 2012).
    """
    diff = np.abs(np.diff(params, axis=0))
    fd = diff[:, :3].sum(1) + HEAD_RADIUS_MM * diff[:, 3:].sum(1)
    return np.concatenate([[0.0], fd])


def _series(n: int, volumes: list[int], moves: np.ndarray) -> np.ndarray:
    series = np.zeros((n, 6))
    series[volumes] = moves
    return series


def _anatomical_bvec(scan: DWIScan, world: np.ndarray, bvec: np.ndarray) -> np.ndarray:
    """Direction (voxel axes) the tabled gradient had relative to the moved head: N⁻¹ R⁻¹ N g."""
    axes = scan.affine[:3, :3] / np.linalg.norm(scan.affine[:3, :3], axis=0)
    return np.linalg.solve(axes, world[:3, :3].T @ axes @ np.asarray(bvec, dtype=float))
