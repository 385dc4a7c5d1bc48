"""Render a slice of a 3D volume as a viewer shows it: anatomical plane, physical aspect, window.

Pure computation on arrays; writing the PNG is :func:`save_png`'s only job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

Plane = Literal["axial", "coronal", "sagittal"]
PLANES: tuple[str, ...] = ("axial", "coronal", "sagittal")
#: World axis (0 = R/L, 1 = A/P, 2 = S/I) normal to each plane.
_NORMAL_WORLD_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}


def plane_axis(affine: np.ndarray, plane: str) -> int:
    """Voxel axis normal to ``plane`` (the axis the slice index runs along).

    >>> plane_axis(np.diag([2.0, 2.0, 3.0, 1.0]), "axial")
    2
    """
    import nibabel as nib

    if plane not in _NORMAL_WORLD_AXIS:
        raise ValueError(f"plane must be one of {PLANES}, not {plane!r}")
    ornt = nib.orientations.io_orientation(affine)
    return int(np.flatnonzero(ornt[:, 0] == _NORMAL_WORLD_AXIS[plane])[0])


def window_limits(volume: np.ndarray, *, low: float = 1.0, high: float = 99.0) -> tuple[float, float]:
    """Display window of a volume: its ``low``-th and ``high``-th intensity percentiles."""
    values = volume[np.isfinite(volume)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(values, [low, high]))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def extract_plane(volume: np.ndarray, affine: np.ndarray, *, plane: str, index: int) -> np.ndarray:
    """The slice ``index`` of ``plane`` as displayed: float ``(rows, cols)`` in voxels.

    Orientation as in radiological viewers: axial with anterior up and the patient's right on
    the left of the image, coronal and sagittal with superior up.

    Parameters
    ----------
    volume
        ``(X, Y, Z)`` voxels.
    affine
        Voxel-to-world (RAS+ mm) matrix, ``(4, 4)``.
    plane
        ``axial``, ``coronal`` or ``sagittal``.
    index
        Slice index along :func:`plane_axis`.
    """
    import nibabel as nib

    ornt = nib.orientations.io_orientation(affine)
    # Reorder to RAS voxel axes (a view, no interpolation).
    ras = nib.orientations.apply_orientation(volume, ornt)
    axis = plane_axis(affine, plane)
    flipped = ornt[axis, 1] < 0
    world_index = volume.shape[axis] - 1 - index if flipped else index
    world_axis = _NORMAL_WORLD_AXIS[plane]
    cut = np.take(ras, world_index, axis=world_axis)
    # cut axes are the two remaining RAS axes in order; rows must run from A (or S) downwards.
    image = np.flipud(cut.T)
    if plane in ("axial", "coronal"):
        image = np.fliplr(image)  # radiological: patient's right on the image's left
    return np.ascontiguousarray(image, dtype=np.float32)


def display_spacing(affine: np.ndarray, *, plane: str) -> tuple[float, float]:
    """Pixel size (mm) of rows and columns of :func:`extract_plane`'s output."""
    import nibabel as nib

    zooms = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
    ornt = nib.orientations.io_orientation(affine)
    by_world = {int(ornt[v, 0]): float(zooms[v]) for v in range(3)}
    others = [w for w in range(3) if w != _NORMAL_WORLD_AXIS[plane]]
    return by_world[others[1]], by_world[others[0]]


def to_physical_aspect(image: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """Repeat pixels (nearest neighbour, as a viewer's default) so both axes have the spacing
    of the finer one; thick slices look thick, as on screen. Factors are rounded to integers.
    """
    fine = min(spacing)
    rows, cols = (max(1, int(round(s / fine))) for s in spacing)
    return np.repeat(np.repeat(image, rows, axis=0), cols, axis=1)


def to_uint8(image: np.ndarray, limits: tuple[float, float]) -> np.ndarray:
    """Map ``limits`` (low, high) to 0..255, clipping outside."""
    lo, hi = limits
    scaled = np.clip((image - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    return np.round(scaled * 255.0).astype(np.uint8)


def render_slice(
    volume: np.ndarray, affine: np.ndarray, *, plane: str, index: int, limits: tuple[float, float] | None = None
) -> np.ndarray:
    """A grey-scale 8-bit picture of one slice, as a viewer shows it: ``(rows, cols)`` uint8.

    ``limits`` default to the 1st-99th percentile of the whole ``volume`` (the window a
    viewer opens a volume with), so a dark slice stays dark.
    """
    image = extract_plane(volume, affine, plane=plane, index=index)
    image = to_physical_aspect(image, display_spacing(affine, plane=plane))
    return to_uint8(image, limits or window_limits(volume))


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write a uint8 ``(rows, cols)`` image as a grey-scale PNG (deterministic bytes)."""
    from PIL import Image

    path = Path(path)
    Image.fromarray(np.asarray(image, dtype=np.uint8), mode="L").save(path, format="PNG", optimize=False)
    return path
