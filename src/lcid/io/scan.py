"""The in-memory diffusion scan every layer above `io/` works on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class DWIScan:
    """A 4D diffusion-weighted series with its gradient table.

    Parameters
    ----------
    data
        Signal, shape ``(X, Y, Z, N)``, float32, in the voxel order of the file.
    affine
        4x4 voxel-to-world (RAS+, mm) matrix of the NIfTI header.
    bvals
        b-values in s/mm², shape ``(N,)``.
    bvecs
        Unit gradient directions in image (voxel) space as FSL stores them, shape ``(N, 3)``;
        rows are zero for b0 volumes.
    sidecar
        BIDS/dcm2niix JSON sidecar fields (empty when none was found).
    path
        Where the image was read from ("" for an in-memory scan).
    """

    data: np.ndarray
    affine: np.ndarray
    bvals: np.ndarray
    bvecs: np.ndarray
    sidecar: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    @property
    def n_volumes(self) -> int:
        return int(self.data.shape[3])

    @property
    def voxel_size_mm(self) -> tuple[float, float, float]:
        """Voxel edge lengths in mm, from the affine's column norms."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def orientation(self) -> str:
        """Axis codes of the voxel axes, e.g. ``"LAS"`` (nibabel's aff2axcodes)."""
        import nibabel as nib

        return "".join(nib.aff2axcodes(self.affine))

    @property
    def phase_encoding_axis(self) -> int | None:
        """Voxel axis (0, 1, 2) of phase encoding from the sidecar, or None when unknown."""
        ped = str(self.sidecar.get("PhaseEncodingDirection", "")) or str(
            self.sidecar.get("PhaseEncodingAxis", "")
        )
        return {"i": 0, "j": 1, "k": 2}.get(ped[:1]) if ped else None

    def replace(self, **changes: Any) -> DWIScan:
        """Copy with some fields replaced."""
        fields = {k: getattr(self, k) for k in ("data", "affine", "bvals", "bvecs", "sidecar", "path")}
        fields.update(changes)
        return DWIScan(**fields)
