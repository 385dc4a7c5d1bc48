"""Signal dropout of whole slices in some diffusion-weighted volumes.

Bulk motion during the diffusion encoding dephases the spins of the slices being excited,
which lose part or all of their signal in that volume. With multiband acquisition the slices
excited together (equal ``SliceTiming``, or ``MultibandAccelerationFactor``) drop out
together. The worst slice loses the drawn fraction of its signal (1 - observed/expected);
other events lose a fraction drawn between the severity's lower bound and the worst.
"""

from __future__ import annotations

import numpy as np

from lcid.dwi.gradients import b0_mask
from lcid.dwi.severity import magnitude_range
from lcid.io.scan import DWIScan
from lcid.simulate.anatomy import object_mask, slice_axis, slice_groups
from lcid.simulate.magnitude import draw_magnitude


def sample(rng: np.random.Generator, scan: DWIScan, severity: str) -> dict:
    """Draw the dropout events: ``events`` of ``{volume, slices, fraction_lost}``."""
    worst = draw_magnitude(rng, "missing_slices", severity, cap=1.0)
    low = magnitude_range("missing_slices", severity)[0]
    axis = slice_axis(scan)
    mask = object_mask(scan)
    area = mask.sum(axis=tuple(a for a in range(3) if a != axis))
    # Only slices through the object show a dropout.
    candidates = np.flatnonzero(area >= 0.5 * area.max()) if area.max() > 0 else np.arange(scan.shape[axis])
    groups = [g for g in slice_groups(scan, axis) if any(s in candidates for s in g)]
    dw = np.flatnonzero(~b0_mask(scan.bvals))
    dw = dw if dw.size else np.arange(scan.n_volumes)
    n_events = int(rng.integers(1, min(3, dw.size) + 1))
    volumes = rng.choice(dw, size=n_events, replace=False)
    events = []
    for i, v in enumerate(sorted(int(v) for v in volumes)):
        group = groups[int(rng.integers(len(groups)))]
        fraction = worst if i == 0 else float(rng.uniform(low, worst)) if worst > low else worst
        events.append({"volume": v, "slices": [int(s) for s in group], "fraction_lost": round(fraction, 6)})
    return {
        "fraction_lost": round(worst, 6),
        "slice_axis": axis,
        "multiband_factor": int(scan.sidecar.get("MultibandAccelerationFactor", 1) or 1),
        "events": events,
    }


def apply(scan: DWIScan, params: dict) -> tuple[DWIScan, dict]:
    """Scale each event's slices by ``1 - fraction_lost``; returns (scan, where)."""
    axis = int(params["slice_axis"])
    data = scan.data.copy()
    pairs = []
    for event in params["events"]:
        v = int(event["volume"])
        for s in event["slices"]:
            index = [slice(None)] * 3
            index[axis] = int(s)
            data[(*index, v)] *= np.float32(1.0 - float(event["fraction_lost"]))
            pairs.append([v, int(s)])
    pairs.sort()
    return scan.replace(data=data), {
        "volumes": sorted({p[0] for p in pairs}),
        "slices": sorted({p[1] for p in pairs}),
        "pairs": pairs,
    }
