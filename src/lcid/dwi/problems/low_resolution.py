"""Voxels too large or too anisotropic for the analyses a diffusion scan is used for.

The magnitude graded is the largest voxel edge (mm) on the shared scale (3 mm or less is
fine for tensor work; severity from 3.01 mm). Which analyses the resolution supports:

==================  =====================  ============  =====================================
analysis            largest edge (mm)      anisotropy    source
==================  =====================  ============  =====================================
``dti``             <= 3.0                 <= 2.0        common DTI/TBSS practice; Jones &
                                                          Cercignani 2010 (NMR Biomed 23:803)
``tractography``    <= 2.5                 <= 1.5        Jones, Knösche & Turner 2013
                                                          (NeuroImage 73:239); Vos et al. 2011
``morphometry``     <= 1.5                 <= 1.2        fine structure (cortex, small
                                                          nuclei): HCP-style 1.25-1.5 mm iso
==================  =====================  ============  =====================================

Anisotropy is largest / smallest edge: thick slices bias tractography towards in-plane
paths and blur partial volumes along the slice axis.
"""

from __future__ import annotations

import numpy as np

from lcid.dwi.context import CheckContext
from lcid.dwi.finding import Finding
from lcid.dwi.severity import confidence, grade
from lcid.io.scan import DWIScan

PROBLEM = "low_resolution"
#: analysis -> (largest voxel edge mm, largest anisotropy ratio) it needs at most.
REQUIREMENTS: dict[str, tuple[float, float]] = {
    "dti": (3.0, 2.0),
    "tractography": (2.5, 1.5),
    "morphometry": (1.5, 1.2),
}
#: Log-scale width of the confidence logistic: the voxel size is known exactly, so the
#: confidence is sharp around the ``mild`` bound (0.5 there, < 0.05 at 2.5 mm).
SOFTNESS = 0.05


def detect(scan: DWIScan, context: CheckContext) -> Finding:
    """Grade the voxel size of ``scan`` and list the analyses it supports.

    Parameters
    ----------
    scan
        The series; voxel edges come from its affine (mm).
    context
        Unused: resolution is a property of the grid, brain or phantom alike.

    Returns
    -------
    Finding
        Metrics ``voxel_size_mm``, ``largest_edge_mm``, ``anisotropy_ratio``,
        ``voxel_volume_mm3``, ``supports`` and ``not_supported``.
    """
    del context  # the grid alone decides
    sizes = np.asarray(scan.voxel_size_mm, dtype=float)
    if not np.all(np.isfinite(sizes)) or np.any(sizes <= 0):
        return Finding(problem=PROBLEM, applicable=False, metrics={"reason": "affine has no valid voxel size"})
    metrics = resolution_metrics(sizes)
    largest = metrics["largest_edge_mm"]
    return Finding(
        problem=PROBLEM,
        severity=grade(largest, PROBLEM),
        confidence=confidence(largest, PROBLEM, softness=SOFTNESS),
        metrics=metrics,
    )


def resolution_metrics(sizes: np.ndarray) -> dict:
    """Voxel size facts and the analyses they support.

    Parameters
    ----------
    sizes
        Voxel edges (mm), shape ``(3,)``.

    >>> resolution_metrics(np.array([2.0, 2.0, 3.0]))["supports"]
    ['dti']
    """
    largest, smallest = float(sizes.max()), float(sizes.min())
    anisotropy = largest / smallest
    # 1e-3 tolerance: affines store 2.0 mm as 1.9999995 or 2.0000005.
    supports = [
        name
        for name, (edge, ratio) in REQUIREMENTS.items()
        if largest <= edge + 1e-3 and anisotropy <= ratio + 1e-3
    ]
    return {
        "voxel_size_mm": [round(float(s), 3) for s in sizes],
        "largest_edge_mm": round(largest, 3),
        "anisotropy_ratio": round(anisotropy, 3),
        "voxel_volume_mm3": round(float(np.prod(sizes)), 3),
        "isotropic_equivalent_mm": round(float(np.prod(sizes)) ** (1 / 3), 3),
        "supports": supports,
        "not_supported": [name for name in REQUIREMENTS if name not in supports],
    }
