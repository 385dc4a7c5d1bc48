"""Gradient-table errors: the image is untouched, the b-vectors are wrong.

Kinds (the magnitude is the fraction of diffusion-weighted volumes with an inconsistent
gradient; a flip or permutation of an axis affects the whole table and counts as 1.0):

``flip``         one axis of every b-vector negated (a classic conversion-tool sign error);
``permute``      two axes swapped;
``corrupt``      some volumes get a wrong vector: non-unit length (scaled by 0.5-0.8 or
                 1.2-1.5), a zero vector with b > 0, or a random unrelated direction.

``flip`` and ``permute`` are drawn only at ``severe`` (their magnitude 1.0 grades severe);
DIPY's ``gradient_table`` is not used to write them because it rejects non-unit vectors,
which are part of what this simulates.
"""

from __future__ import annotations

import numpy as np

from lcid.dwi.gradients import b0_mask
from lcid.dwi.severity import magnitude_range
from lcid.errors import InputError
from lcid.io.scan import DWIScan
from lcid.simulate.magnitude import draw_magnitude

CORRUPTIONS = ("non_unit", "zero_vector", "wrong_direction")


def sample(rng: np.random.Generator, scan: DWIScan, severity: str) -> dict:
    """Draw the kind of error and, for ``corrupt``, which volumes and how."""
    target = draw_magnitude(rng, "gradient_table", severity)
    low, high = magnitude_range("gradient_table", severity)
    dw = np.flatnonzero(~b0_mask(scan.bvals))
    if dw.size == 0:
        raise InputError("gradient_table: the scan has no diffusion-weighted volume")
    if severity == "severe" and rng.random() < 0.5:
        if rng.random() < 0.5:
            return {"kind": "flip", "axis": int(rng.integers(3)), "fraction": 1.0}
        axes = sorted(int(a) for a in rng.choice(3, size=2, replace=False))
        return {"kind": "permute", "axes": axes, "fraction": 1.0}
    counts = [c for c in range(1, dw.size + 1) if low <= c / dw.size < high]
    if not counts:
        raise InputError(f"gradient_table {severity}: {dw.size} diffusion volumes cannot give a {low:g}-{high:g} fraction")
    count = min(counts, key=lambda c: abs(c / dw.size - target))
    volumes = sorted(int(v) for v in rng.choice(dw, size=count, replace=False))
    changes = []
    for v in volumes:
        how = str(rng.choice(CORRUPTIONS))
        if how == "non_unit":
            vector = scan.bvecs[v] * (rng.uniform(0.5, 0.8) if rng.random() < 0.5 else rng.uniform(1.2, 1.5))
        elif how == "zero_vector":
            vector = np.zeros(3)
        else:
            vector = rng.normal(size=3)
            vector /= np.linalg.norm(vector)
        changes.append({"volume": v, "how": how, "vector": np.asarray(vector).round(6).tolist()})
    return {"kind": "corrupt", "fraction": round(count / dw.size, 6), "changes": changes}


def apply(scan: DWIScan, params: dict) -> tuple[DWIScan, dict]:
    """Rewrite the b-vectors; returns (scan, where)."""
    bvecs = np.array(scan.bvecs, dtype=float, copy=True)
    if params["kind"] == "flip":
        bvecs[:, int(params["axis"])] *= -1
        bvecs[bvecs == 0] = 0.0  # no negative zeros in the written file
        volumes = np.flatnonzero(~b0_mask(scan.bvals)).tolist()
    elif params["kind"] == "permute":
        a, b = (int(i) for i in params["axes"])
        bvecs[:, [a, b]] = bvecs[:, [b, a]]
        volumes = np.flatnonzero(~b0_mask(scan.bvals)).tolist()
    else:
        volumes = []
        for change in params["changes"]:
            bvecs[int(change["volume"])] = change["vector"]
            volumes.append(int(change["volume"]))
    return scan.replace(bvecs=bvecs), {"volumes": [int(v) for v in volumes]}
