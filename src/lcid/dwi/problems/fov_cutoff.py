"""Brain outside the field of view: the vertex (or the cerebellum) cut off.

The voxel axis closest to the superior-inferior world axis, and which of its ends is
superior, come from the affine (nibabel's ``io_orientation``), so axial, coronal,
sagittal, oblique and non-supine scans are handled alike. Along that axis the brain
mask's cross-sectional area gives a profile. When brain reaches an edge of the field of
view, the missing extent is estimated by extrapolating the head's dome: between the
largest cross-section and the vertex an ellipsoid has area
``A(h) = A_max (1 - (h / c)^2)`` at height ``h``; ``c`` is fitted by least squares to
the slices from the largest cross-section to the edge, and the brain beyond the edge is
``c`` minus the distance from the largest cross-section to the edge (mm). Checked on a full-brain scan cropped by 4-24 mm: within about 2 mm.

Inferior edge: the brain continues into the brainstem and the cord, so a cut below the
cerebellum is normal coverage. The inferior estimate therefore discounts a cross-section
of :data:`BRAINSTEM_FRACTION` of the largest section (pons with its surrounding CSF in
the mask) and counts with weight :data:`INFERIOR_WEIGHT` towards the severity; both
estimates are reported as metrics.
"""

from __future__ import annotations

import numpy as np

from lcid.dwi.context import CheckContext
from lcid.dwi.finding import Finding
from lcid.dwi.severity import SCALE, confidence, grade
from lcid.io.scan import DWIScan

PROBLEM = "fov_cutoff"
#: Fraction of the largest axial brain section that the pons and its CSF occupy in the mask
#: (pons about 7 cm², largest axial brain section about 150-190 cm², doubled for the CSF
#: and partial volume a b0 mask includes).
BRAINSTEM_FRACTION = 0.1
#: Weight of the inferior cut in the severity: missing cerebellum matters, but less often
#: for the analyses of a diffusion scan than a missing vertex.
INFERIOR_WEIGHT = 0.5
#: Edge cross-sections below this fraction of the largest one are mask noise, not brain.
EDGE_FRACTION = 0.02
#: Height of the adult brain above its largest axial section (mm), used when that section
#: itself lies at the edge, so that no dome can be fitted (Talairach atlas: ~ 60-75 mm).
DOME_HEIGHT_MM = 60.0


def detect(scan: DWIScan, context: CheckContext) -> Finding:
    """Estimate how many mm of brain lie beyond the superior and inferior FOV edges.

    Parameters
    ----------
    scan
        The series (its affine gives the orientation).
    context
        Precomputed brain mask and anatomy.

    Returns
    -------
    Finding
        Metrics ``superior_cut_mm``, ``inferior_cut_mm``, margins, edge area fractions;
        ``where.slices`` the edge slices with brain when the superior-inferior axis is the
        slice axis; ``evidence`` the area profile (inferior to superior) and a mid-sagittal
        b0 and mask in RAS orientation.
    """
    if context.is_phantom:
        return Finding(problem=PROBLEM, applicable=False, metrics={"reason": "phantom: no brain"})
    axis, superior_is_last = superior_axis(scan.affine)
    step = float(scan.voxel_size_mm[axis])
    others = tuple(a for a in range(3) if a != axis)
    voxel_area = float(np.prod([scan.voxel_size_mm[a] for a in others]))
    profile = context.mask.sum(axis=others).astype(float) * voxel_area
    if not superior_is_last:
        profile = profile[::-1]  # now ordered inferior -> superior
    if profile.max() <= 0:
        return Finding(problem=PROBLEM, metrics={"reason": "empty brain mask"}, evidence={"si_profile_mm2": profile})

    superior = dome_cut_mm(profile, step=step)
    inferior = dome_cut_mm(profile[::-1], step=step, allowance=BRAINSTEM_FRACTION)
    magnitude = max(superior["cut_mm"], INFERIOR_WEIGHT * inferior["cut_mm"])
    n = profile.size
    edge_index = {"superior": n - 1, "inferior": 0}
    if not superior_is_last:
        edge_index = {"superior": 0, "inferior": n - 1}
    mild = SCALE[PROBLEM][0]
    cut_edges = [
        edge
        for edge, weight, est in (("superior", 1.0, superior), ("inferior", INFERIOR_WEIGHT, inferior))
        if weight * est["cut_mm"] >= mild
    ]
    slices = sorted(edge_index[e] for e in cut_edges) if axis == context.slice_axis else []
    metrics = {
        "superior_cut_mm": round(superior["cut_mm"], 2),
        "inferior_cut_mm": round(inferior["cut_mm"], 2),
        "superior_margin_mm": round(superior["margin_mm"], 2),
        "inferior_margin_mm": round(inferior["margin_mm"], 2),
        "superior_edge_area_fraction": round(superior["edge_fraction"], 4),
        "inferior_edge_area_fraction": round(inferior["edge_fraction"], 4),
        "cut_edges": cut_edges,
        "si_voxel_axis": int(axis),
        "superior_edge_index": int(edge_index["superior"]),
        "inferior_edge_index": int(edge_index["inferior"]),
        "extrapolated": bool(superior["extrapolated"] or inferior["extrapolated"]),
    }
    return Finding(
        problem=PROBLEM,
        severity=grade(magnitude, PROBLEM),
        confidence=confidence(magnitude, PROBLEM),
        metrics=metrics,
        where={"volumes": [], "slices": slices},
        evidence={
            "si_profile_mm2": profile,
            "si_positions_mm": (np.arange(n) - (n - 1) / 2) * step,
            **_sagittal(context.b0, context.mask, scan.affine),
        },
    )


def superior_axis(affine: np.ndarray) -> tuple[int, bool]:
    """Voxel axis nearest to superior-inferior and whether its last index is superior.

    >>> superior_axis(np.diag([-2.0, 2.0, 2.0, 1.0]))
    (2, True)
    >>> superior_axis(np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1.0]]))
    (1, False)
    """
    from nibabel.orientations import io_orientation

    ornt = io_orientation(np.asarray(affine, dtype=float))
    matches = np.flatnonzero(ornt[:, 0] == 2)
    if matches.size == 0:  # degenerate affine: assume the usual axial slice stack
        return 2, True
    axis = int(matches[0])
    return axis, bool(ornt[axis, 1] > 0)


def dome_cut_mm(profile: np.ndarray, *, step: float, allowance: float = 0.0) -> dict:
    """Brain extent beyond the last element of an area profile, by a fitted ellipsoid dome.

    Parameters
    ----------
    profile
        Cross-sectional brain area per slice (any unit), ``(S,)``, the edge of interest last.
    step
        Slice spacing along the profile (mm).
    allowance
        Fraction of the largest section that is not counted (a structure that normally
        continues beyond the edge, such as the brainstem).

    Returns
    -------
    dict
        ``cut_mm`` (>= 0), ``margin_mm`` (distance from the last slice with brain to the
        edge, 0 when cut), ``edge_fraction`` (edge area / largest area) and
        ``extrapolated`` (True when the largest section is at the edge and the dome height
        is the anatomical default).
    """
    profile = np.asarray(profile, dtype=float)
    # 3-slice running mean to find the largest section robustly (hand-written: one line).
    smooth = np.convolve(np.pad(profile, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    # The centre of the (possibly flat) run of near-largest sections is the dome's centre.
    peak = int(round(float(np.mean(np.flatnonzero(smooth >= 0.99 * smooth.max())))))
    a = np.clip((profile / smooth[peak] - allowance) / (1.0 - allowance), 0.0, None)
    edge_fraction = float(profile[-1] / smooth[peak])
    result = {"cut_mm": 0.0, "margin_mm": 0.0, "edge_fraction": edge_fraction, "extrapolated": False}
    n = profile.size
    if a[-1] < EDGE_FRACTION:
        with_brain = np.flatnonzero(a >= EDGE_FRACTION)
        last = int(with_brain.max()) if with_brain.size else -1
        result["margin_mm"] = (n - 1 - last) * step if last >= 0 else n * step
        return result
    edge_distance = (n - 1 - peak) * step + step / 2
    if n - 1 - peak <= 1:
        result.update(cut_mm=max(DOME_HEIGHT_MM - edge_distance, 0.0), extrapolated=True)
        return result
    heights = (np.arange(peak, n) - peak) * step
    deficit = 1.0 - np.minimum(a[peak:], 1.0)
    # Least squares through the origin of deficit = (h / c)^2 for 1 / c^2 (the dome's
    # centre is the largest section; the fit uses every slice from there to the edge).
    inv_c2 = float((deficit * heights**2).sum() / (heights**4).sum())
    if inv_c2 <= 0:
        result.update(cut_mm=max(DOME_HEIGHT_MM - edge_distance, 0.0), extrapolated=True)
        return result
    result["cut_mm"] = float(max(1.0 / np.sqrt(inv_c2) - edge_distance, 0.0))
    return result


def _sagittal(b0: np.ndarray, mask: np.ndarray, affine: np.ndarray) -> dict:
    """Mid-sagittal b0 and mask in RAS orientation, ``(A, S)`` arrays for the report."""
    from nibabel.orientations import apply_orientation, io_orientation

    ornt = io_orientation(np.asarray(affine, dtype=float))
    if np.isnan(ornt).any():
        return {}
    b0_ras = apply_orientation(b0, ornt)
    mask_ras = apply_orientation(mask, ornt)
    x = b0_ras.shape[0] // 2
    return {"sagittal_b0": b0_ras[x], "sagittal_mask": mask_ras[x]}
