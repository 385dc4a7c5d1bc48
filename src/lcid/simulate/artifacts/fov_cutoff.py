"""Field-of-view cut-off: the top (or bottom) of the brain outside the imaged slab.

The superior (or inferior) voxel axis and its direction come from the affine (nibabel's
``io_orientation``). All empty slices beyond the object, then as many object slices as the
drawn magnitude (mm) covers, are cropped, so the object touches the new edge. The affine
is shifted when the low-index end is cropped, so every remaining voxel keeps its world
position; ``SliceTiming`` follows when the cropped axis is the slice axis.
"""

from __future__ import annotations

import numpy as np

from lcid.dwi.severity import magnitude_range
from lcid.errors import InputError
from lcid.io.scan import DWIScan
from lcid.simulate.anatomy import object_mask, reslice_timing, slice_axis
from lcid.simulate.magnitude import draw_magnitude


def superior_axis(affine: np.ndarray) -> tuple[int, int]:
    """(voxel axis, +1 or -1): the axis closest to world S and whether its index grows superiorly."""
    import nibabel as nib

    ornt = nib.orientations.io_orientation(affine)
    axis = int(np.flatnonzero(ornt[:, 0] == 2)[0])
    return axis, int(ornt[axis, 1])


def sample(rng: np.random.Generator, scan: DWIScan, severity: str) -> dict:
    """Draw the end (superior 80%, inferior 20%) and the mm of object to remove."""
    target = draw_magnitude(rng, "fov_cutoff", severity)
    low, high = magnitude_range("fov_cutoff", severity)
    end = "superior" if rng.random() < 0.8 else "inferior"
    axis, direction = superior_axis(scan.affine)
    voxel = scan.voxel_size_mm[axis]
    mask = object_mask(scan)
    occupied = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
    if occupied.size == 0:
        raise InputError("fov_cutoff: no object found in the image to cut")
    # Object slices to remove: a whole number whose extent (mm) lies in the severity's range.
    allowed = [n for n in range(1, occupied.size // 2 + 1) if low <= n * voxel < high]
    if not allowed:
        raise InputError(
            f"fov_cutoff {severity}: cannot remove {low:g}-{high:g} mm with {voxel:g} mm slices "
            f"and {occupied.size} object slices"
        )
    n_remove = min(allowed, key=lambda n: abs(n * voxel - target))
    cut_at_high_index = (end == "superior") == (direction > 0)
    n = scan.shape[axis]
    start, stop = (0, int(occupied.max()) + 1 - n_remove) if cut_at_high_index else (int(occupied.min()) + n_remove, n)
    return {
        "end": end,
        "axis": axis,
        "cut_mm": round(n_remove * voxel, 6),
        "object_slices_removed": n_remove,
        "keep": [start, stop],
    }


def apply(scan: DWIScan, params: dict) -> tuple[DWIScan, dict]:
    """Crop ``keep`` along ``axis`` and shift the affine; returns (scan, where)."""
    axis = int(params["axis"])
    start, stop = (int(i) for i in params["keep"])
    index = [slice(None)] * 4
    index[axis] = slice(start, stop)
    data = np.ascontiguousarray(scan.data[tuple(index)])
    shift = np.eye(4)
    shift[axis, 3] = start
    affine = scan.affine @ shift
    sidecar = reslice_timing(scan.sidecar, axis=axis, slice_ax=slice_axis(scan), old_index=np.arange(start, stop))
    edge = stop - start - 1 if stop < scan.shape[axis] else 0
    cut_high = stop < scan.shape[axis]
    return scan.replace(data=data, affine=affine, sidecar=sidecar), {
        "slices": [edge] if axis == slice_axis(scan) else [],
        "axis": axis,
        "edge": "high" if cut_high else "low",
    }


def index_maps(scan: DWIScan, params: dict) -> dict[str, list[int]]:
    """New index of each old slice (-1 when cropped away), when the slice axis was cropped."""
    axis = int(params["axis"])
    if axis != slice_axis(scan):
        return {}
    start, stop = (int(i) for i in params["keep"])
    return {"slices": [i - start if start <= i < stop else -1 for i in range(scan.shape[axis])]}
