"""What every detector needs to know about a scan, computed once per check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from lcid.dwi.gradients import Shell, b0_mask, shells
from lcid.dwi.mask import foreground_mask
from lcid.io.scan import DWIScan

Anatomy = Literal["auto", "brain", "phantom"]

#: Mean diffusivity (mm²/s) above which the object is taken to be free water (a phantom):
#: brain tissue averages about 0.8e-3, water at room temperature about 2e-3.
PHANTOM_MD = 1.6e-3


@dataclass(frozen=True, eq=False)
class CheckContext:
    """Shared, precomputed facts about one scan.

    Attributes
    ----------
    b0
        Mean of the b0 volumes (or of the lowest-b volumes when there is no b0), ``(X, Y, Z)``.
    mask
        Foreground mask, bool ``(X, Y, Z)``.
    b0_volumes
        Indices of b0 volumes.
    shells
        Shells with their volumes and unique directions.
    pe_axis
        Voxel axis of phase encoding (0, 1, 2), or None when the sidecar does not say.
    slice_axis
        Voxel axis along which slices were acquired (2 for dcm2niix output).
    is_phantom
        True when the object is not a brain (brain-specific steps then say they do not apply).
    mean_diffusivity
        Mean apparent diffusivity in the mask, mm²/s (NaN without diffusion-weighted volumes).
    """

    b0: np.ndarray
    mask: np.ndarray
    b0_volumes: tuple[int, ...]
    shells: tuple[Shell, ...]
    pe_axis: int | None
    slice_axis: int
    is_phantom: bool
    mean_diffusivity: float

    @property
    def dw_volumes(self) -> tuple[int, ...]:
        """Indices of the diffusion-weighted (non-b0) volumes."""
        b0 = set(self.b0_volumes)
        return tuple(i for s in self.shells for i in s.volumes if i not in b0)


def build_context(scan: DWIScan, *, anatomy: Anatomy = "auto") -> CheckContext:
    """Compute the mask, b0 reference, shells and anatomy of ``scan``."""
    is_b0 = b0_mask(scan.bvals)
    if is_b0.any():
        ref_volumes = np.flatnonzero(is_b0)
    else:
        ref_volumes = np.flatnonzero(scan.bvals == scan.bvals.min())
    b0 = scan.data[..., ref_volumes].mean(axis=3)
    mask = foreground_mask(b0)
    md = _mean_diffusivity(scan, b0, mask, is_b0)
    # Detectors share these arrays: read-only so that none can change what the next one sees.
    b0.setflags(write=False)
    mask.setflags(write=False)
    if anatomy == "auto":
        is_phantom = bool(np.isfinite(md) and md > PHANTOM_MD)
    else:
        is_phantom = anatomy == "phantom"
    return CheckContext(
        b0=b0,
        mask=mask,
        b0_volumes=tuple(int(i) for i in np.flatnonzero(is_b0)),
        shells=tuple(shells(scan.bvals, scan.bvecs)),
        pe_axis=scan.phase_encoding_axis,
        slice_axis=2,
        is_phantom=is_phantom,
        mean_diffusivity=md,
    )


def _mean_diffusivity(scan: DWIScan, b0: np.ndarray, mask: np.ndarray, is_b0: np.ndarray) -> float:
    """Median over the mask of -ln(S/S0)/b for the lowest non-zero shell's mean signal."""
    dw = np.flatnonzero(~is_b0)
    if dw.size == 0 or not mask.any() or not is_b0.any():
        return float("nan")
    b_low = scan.bvals[dw].min()
    low = dw[np.abs(scan.bvals[dw] - b_low) <= 100]
    s0 = b0[mask]
    s = scan.data[..., low].mean(axis=3)[mask]
    ok = (s0 > 0) & (s > 0)
    if ok.sum() < 10:
        return float("nan")
    return float(np.median(-np.log(s[ok] / s0[ok]) / float(np.mean(scan.bvals[low]))))
