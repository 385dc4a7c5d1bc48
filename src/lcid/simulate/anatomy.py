"""Where the object is in a scan: the mask the simulator measures magnitudes in."""

from __future__ import annotations

import numpy as np

from lcid.dwi.gradients import b0_mask
from lcid.dwi.mask import foreground_mask
from lcid.io.scan import DWIScan


def mean_b0(scan: DWIScan) -> np.ndarray:
    """Mean of the b0 volumes (the first volume when there is none), ``(X, Y, Z)``."""
    b0 = b0_mask(scan.bvals)
    return scan.data[..., b0].mean(-1) if np.any(b0) else scan.data[..., 0]


def object_mask(scan: DWIScan) -> np.ndarray:
    """Foreground (brain or phantom) mask of the mean b0, bool ``(X, Y, Z)``."""
    return foreground_mask(mean_b0(scan))


def slice_axis(scan: DWIScan) -> int:
    """Voxel axis of slice encoding: the sidecar's ``SliceEncodingDirection`` or 2 (axial EPI)."""
    code = str(scan.sidecar.get("SliceEncodingDirection", "k"))[:1]
    return {"i": 0, "j": 1, "k": 2}.get(code, 2)


def pe_axis(scan: DWIScan) -> int:
    """Voxel axis of phase encoding: from the sidecar, or 1 (``j``, the usual EPI choice)."""
    axis = scan.phase_encoding_axis
    return 1 if axis is None else int(axis)


def slice_groups(scan: DWIScan, axis: int) -> list[list[int]]:
    """Slices excited together, as lists of indices along ``axis``.

    Equal times in ``SliceTiming`` define the groups; without timing, a
    ``MultibandAccelerationFactor`` m > 1 groups slices ``s, s + n/m, s + 2n/m, ...``;
    otherwise each slice is its own group.
    """
    n = scan.data.shape[axis]
    timing = scan.sidecar.get("SliceTiming")
    if isinstance(timing, list) and len(timing) == n:
        groups: dict[float, list[int]] = {}
        for index, t in enumerate(timing):
            groups.setdefault(round(float(t), 4), []).append(index)
        return sorted(groups.values())
    factor = int(scan.sidecar.get("MultibandAccelerationFactor", 1) or 1)
    if factor > 1 and n % factor == 0:
        step = n // factor
        return [[s + j * step for j in range(factor)] for s in range(step)]
    return [[s] for s in range(n)]


def late_slices(scan: DWIScan, axis: int) -> list[int]:
    """The slices acquired in the second half of the volume (interleaved: the second pass).

    From ``SliceTiming`` when present (times at or above the median), else the odd slices.
    """
    n = scan.data.shape[axis]
    timing = scan.sidecar.get("SliceTiming")
    if isinstance(timing, list) and len(timing) == n and len(set(timing)) > 1:
        t = np.asarray(timing, dtype=float)
        return [int(i) for i in np.flatnonzero(t >= np.median(t)) if t[i] > t.min()]
    return list(range(1, n, 2))


def reslice_timing(sidecar: dict, *, axis: int, slice_ax: int, old_index: np.ndarray) -> dict:
    """Sidecar with ``SliceTiming`` following a change of the slice grid.

    ``old_index`` gives, for each new slice along ``axis``, the nearest old slice index.
    Other fields are kept; nothing changes when ``axis`` is not the slice axis.
    """
    timing = sidecar.get("SliceTiming")
    if axis != slice_ax or not isinstance(timing, list) or not timing:
        return dict(sidecar)
    updated = dict(sidecar)
    updated["SliceTiming"] = [timing[int(i)] for i in old_index if 0 <= int(i) < len(timing)]
    return updated
