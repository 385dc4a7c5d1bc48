"""N/2 ghosting: a replica of the image shifted by half the field of view along phase encoding.

Uses TorchIO's deterministic ``Ghosting`` transform with two ghosts (every other k-space
line along PE scaled by ``1 − s``, the classic odd/even EPI echo inconsistency), no centre
restoration. This gives ``I' = (1 − s/2) I ± (s/2) I(shifted by N/2)``, so the
ghost-to-signal ratio is ``(s/2) / (1 − s/2)``; ``s`` is set from the drawn ratio. The
magnitude of the result is kept, as a magnitude reconstruction would.
"""

from __future__ import annotations

import numpy as np

from lcid.io.scan import DWIScan
from lcid.simulate.anatomy import pe_axis
from lcid.simulate.magnitude import draw_magnitude


def sample(rng: np.random.Generator, scan: DWIScan, severity: str) -> dict:
    """Draw the ghost-to-signal ratio; TorchIO's intensity follows from it."""
    ratio = draw_magnitude(rng, "ghosting", severity)
    return {
        "ghost_to_signal": round(ratio, 6),
        "torchio_intensity": round(2 * ratio / (1 + ratio), 9),
        "num_ghosts": 2,
        "axis": pe_axis(scan),
    }


def apply(scan: DWIScan, params: dict) -> tuple[DWIScan, dict]:
    """Add the ghost to every volume; returns (scan, where)."""
    import torch
    import torchio as tio

    ghosting = tio.Ghosting(
        num_ghosts=int(params["num_ghosts"]), axis=int(params["axis"]),
        intensity=float(params["torchio_intensity"]), restore=0.0,
    )
    tensor = torch.from_numpy(np.moveaxis(scan.data, -1, 0).copy())
    ghosted = torch.stack([
        ghosting.add_artifact(volume, int(params["num_ghosts"]), int(params["axis"]),
                              float(params["torchio_intensity"]), 0.0)
        for volume in tensor
    ])
    data = np.abs(np.moveaxis(ghosted.numpy(), 0, -1)).astype(np.float32)
    return scan.replace(data=np.ascontiguousarray(data)), {"volumes": list(range(scan.n_volumes))}
