"""Spikes (herringbone): a single corrupt k-space sample in some slices of some volumes.

A spike is an electrical discharge recorded during the readout of one slice, so it lives
in that slice's 2D k-space. Each chosen (volume, slice) pair gets one spike through
TorchIO's deterministic ``Spike`` transform applied to the single slice (a 3D FFT of an
``X x Y x 1`` tensor is the slice's 2D FFT); TorchIO's 3D use would stripe every slice. The
magnitude is the fraction of all (volume, slice) pairs with a spike; each spike's
intensity (relative to the slice spectrum's maximum) and position are recorded.
"""

from __future__ import annotations

import math

import numpy as np

from lcid.dwi.severity import magnitude_range
from lcid.io.scan import DWIScan
from lcid.simulate.anatomy import object_mask, slice_axis
from lcid.simulate.magnitude import draw_magnitude

#: Spike intensity range relative to the slice spectrum's maximum: visible stripes of
#: 30-100% of the slice's mean intensity.
INTENSITY = (0.3, 1.0)


def sample(rng: np.random.Generator, scan: DWIScan, severity: str) -> dict:
    """Draw how many pairs get a spike, which ones, and each spike's position and intensity."""
    target = draw_magnitude(rng, "spikes", severity)
    low, high = magnitude_range("spikes", severity)
    axis = slice_axis(scan)
    total = scan.n_volumes * scan.shape[axis]
    counts = [c for c in range(1, total + 1) if low <= c / total < high]
    count = min(counts, key=lambda c: abs(c / total - target)) if counts else max(1, math.ceil(low * total))
    mask = object_mask(scan)
    area = mask.sum(axis=tuple(a for a in range(3) if a != axis))
    slices = np.flatnonzero(area > 0) if area.max() > 0 else np.arange(scan.shape[axis])
    pool = np.array([(v, s) for v in range(scan.n_volumes) for s in slices])
    chosen = pool[np.sort(rng.choice(len(pool), size=min(count, len(pool)), replace=False))]
    spikes = []
    for v, s in chosen:
        # Position in [0, 1) of each in-plane axis, away from the k-space centre (DC).
        position = rng.uniform(0.05, 0.45, size=2) * rng.choice([-1, 1], size=2) + 0.5
        spikes.append({
            "volume": int(v), "slice": int(s),
            "position": position.round(6).tolist(),
            "intensity": round(float(rng.uniform(*INTENSITY)), 6),
        })
    return {"slice_fraction": round(len(spikes) / total, 6), "slice_axis": axis, "spikes": spikes}


def apply(scan: DWIScan, params: dict) -> tuple[DWIScan, dict]:
    """Add each spike to its slice; returns (scan, where)."""
    import torch
    import torchio as tio

    axis = int(params["slice_axis"])
    data = scan.data.copy()
    pairs = []
    for spike in params["spikes"]:
        v, s = int(spike["volume"]), int(spike["slice"])
        index = [slice(None)] * 3
        index[axis] = s
        plane = torch.from_numpy(np.ascontiguousarray(data[(*index, v)]))[..., None]
        positions = np.array([[*spike["position"], 0.0]])
        transform = tio.Spike(spikes_positions=positions, intensity=float(spike["intensity"]))
        spiked = transform.add_artifact(plane, positions, float(spike["intensity"]))
        data[(*index, v)] = np.abs(spiked[..., 0].numpy())
        pairs.append([v, s])
    pairs.sort()
    return scan.replace(data=data), {
        "volumes": sorted({p[0] for p in pairs}),
        "slices": sorted({p[1] for p in pairs}),
        "pairs": pairs,
    }
