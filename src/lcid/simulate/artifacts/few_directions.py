"""Too few gradient directions: keep a subset of each shell's directions (all b0s kept).

The magnitude is the deficit ``30 − unique directions of the best shell`` (Jones 2004:
at least 30 for robust DTI). Every diffusion shell is cut to ``30 − deficit`` unique
directions, either keeping good coverage (``spread``: farthest-point sampling on the
antipodally symmetric sphere) or breaking it (``clustered``: the directions nearest a
random axis), drawn at random.
"""

from __future__ import annotations

import numpy as np

from lcid.dwi.gradients import shells, unique_directions
from lcid.dwi.severity import magnitude_range
from lcid.errors import InputError
from lcid.io.scan import DWIScan
from lcid.simulate.magnitude import check_severity

#: Directions of the best shell for a deficit of 0 (Jones 2004).
ENOUGH_DIRECTIONS = 30


def sample(rng: np.random.Generator, scan: DWIScan, severity: str) -> dict:
    """Draw the deficit and which volumes each shell keeps."""
    check_severity(severity)
    low, high = magnitude_range("few_directions", severity)
    groups = shells(scan.bvals, scan.bvecs)
    dw = [s for s in groups if s.unique_directions > 0]
    if not dw:
        raise InputError("few_directions: the scan has no diffusion-weighted shell")
    best = max(s.unique_directions for s in dw)
    # Whole deficits inside [low, high) that keep at least one direction and at most what exists.
    deficits = [d for d in range(int(np.ceil(low)), int(np.ceil(high))) if 1 <= ENOUGH_DIRECTIONS - d <= best]
    if not deficits:
        raise InputError(
            f"few_directions {severity}: the best shell already has only {best} directions "
            f"(deficit {ENOUGH_DIRECTIONS - best}), more than this severity's {low:g}-{high:g}"
        )
    deficit = int(rng.choice(deficits))
    keep_n = ENOUGH_DIRECTIONS - deficit
    mode = "spread" if rng.random() < 0.5 else "clustered"
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    kept = [v for s in groups if s.unique_directions == 0 for v in s.volumes]
    for shell in dw:
        kept += _choose(scan.bvecs, list(shell.volumes), keep_n, mode=mode, rng=rng, axis=axis)
    kept = sorted(int(v) for v in kept)
    removed = sorted(set(range(scan.n_volumes)) - set(kept))
    after = shells(scan.bvals[kept], scan.bvecs[kept])
    realised = ENOUGH_DIRECTIONS - max(s.unique_directions for s in after)
    return {
        "mode": mode,
        "deficit": int(realised),
        "unique_directions_best_shell": int(ENOUGH_DIRECTIONS - realised),
        "kept_volumes": kept,
        "removed_volumes": removed,
    }


def apply(scan: DWIScan, params: dict) -> tuple[DWIScan, dict]:
    """Keep ``kept_volumes``; returns (scan, where). The problem is the whole table: no volume is at fault."""
    kept = [int(v) for v in params["kept_volumes"]]
    return scan.replace(
        data=np.ascontiguousarray(scan.data[..., kept]), bvals=scan.bvals[kept], bvecs=scan.bvecs[kept]
    ), {"volumes": []}


def _choose(
    bvecs: np.ndarray, volumes: list[int], n: int, *, mode: str, rng: np.random.Generator, axis: np.ndarray
) -> list[int]:
    """Volumes of one shell whose directions count ``min(n, available)`` unique directions."""
    dirs = bvecs[volumes] / np.maximum(np.linalg.norm(bvecs[volumes], axis=1, keepdims=True), 1e-9)
    if mode == "clustered":
        order = list(np.argsort(-np.abs(dirs @ axis), kind="stable"))
    else:
        order = [int(rng.integers(len(volumes)))]
        nearest = np.abs(dirs @ dirs[order[0]])
        while len(order) < len(volumes):
            nearest[order] = np.inf
            pick = int(np.argmin(nearest))  # farthest from everything chosen (smallest |cos|)
            order.append(pick)
            nearest = np.maximum(nearest, np.abs(dirs @ dirs[pick]))
    chosen: list[int] = []
    for i in order:
        trial = chosen + [int(i)]
        if unique_directions(dirs[trial]) > n:
            continue
        chosen = trial
    return [volumes[i] for i in chosen]
