"""Brain outside the field of view: the vertex (or the cerebellum) cut off.

The voxel axis closest to the superior-inferior world axis, and which of its ends is
superior, come from the affine (nibabel's ``io_orientation``), so axial, coronal,
sagittal, oblique and non-supine scans are handled alike.

Along that axis a profile of brain cross-section is measured per slab (slice), in mm²,
from the b0 *intensity* rather than from the binary mask: each mask voxel counts with its
partial-volume fraction ``clip((b0 - background) / (brain - background), 0, 1)``. A thick
slab that only grazes the vertex then counts as the small mean cross-section it really
holds, not as the full area the (smoothed) mask gives it, so the measure does not depend on
slice thickness.

When brain reaches an edge of the field of view, the missing extent is estimated by
extrapolating the head's dome: above its largest section an ellipsoid has cross-section
``A(u) = A0 (1 - (u / c)^2)`` at height ``u``. ``A0``, the dome's centre ``h0`` and its
height ``c`` are fitted by least squares to the slabs from the largest section to the edge,
each slab compared with the model's *mean over the slab* (exact integral of the clipped
parabola), and the brain beyond the edge is ``h0 + c`` minus the edge's position (mm). On a
full-brain 2 mm scan cropped by 4-24 mm the estimate is within about 2 mm, at 2-9 mm slabs.

Inferior edge: the brain continues into the brainstem and the cord, so a cut below the
cerebellum is normal coverage. The inferior estimate therefore discounts a cross-section
of :data:`BRAINSTEM_FRACTION` of the largest section (pons with its surrounding CSF in
the mask) and counts with weight :data:`INFERIOR_WEIGHT` towards the severity; both
estimates are reported as metrics.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

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
#: Edge slabs holding less than this fraction of the largest section are noise, not brain.
EDGE_FRACTION = 0.03
#: Height of the adult brain above its largest axial section (mm), used when that section
#: itself lies at the edge, so that no dome can be fitted (Talairach atlas: ~ 60-75 mm).
DOME_HEIGHT_MM = 60.0
#: Range of dome heights searched (mm): from a neonate's brain to beyond an adult's.
DOME_SEARCH_MM = (15.0, 150.0)
#: Width of the running mean that locates the largest section (mm): a few mm of anatomy,
#: whatever the slab thickness.
PEAK_WINDOW_MM = 6.0
#: Quantile of the in-mask b0 that stands for "all brain" in the partial-volume fraction.
#: High, so that the bright cortex and CSF of the vertex are not saturated and a slab that
#: holds a third of them counts about a third (with the median, it counted two thirds and
#: the estimate grew with slab thickness); the ratio to the largest section is what matters.
BRAIN_QUANTILE = 0.9


def detect(scan: DWIScan, context: CheckContext) -> Finding:
    """Estimate how many mm of brain lie beyond the superior and inferior FOV edges.

    Parameters
    ----------
    scan
        The series (its affine gives the orientation and the slab thickness).
    context
        Precomputed b0, brain mask and anatomy.

    Returns
    -------
    Finding
        Metrics ``superior_cut_mm``, ``inferior_cut_mm``, margins, edge area fractions;
        ``where.slices`` the edge slices with brain when the superior-inferior axis is the
        slice axis; ``evidence`` the brain cross-section profile (mm², inferior to
        superior) and a mid-sagittal b0 and mask in RAS orientation.
    """
    if context.is_phantom:
        return Finding(problem=PROBLEM, applicable=False, metrics={"reason": "phantom: no brain"})
    axis, superior_is_last = superior_axis(scan.affine)
    step = float(scan.voxel_size_mm[axis])
    profile = brain_profile_mm2(context.b0, context.mask, axis=axis, voxel_mm=scan.voxel_size_mm)
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
        "si_step_mm": round(step, 3),
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


def brain_profile_mm2(b0: np.ndarray, mask: np.ndarray, *, axis: int, voxel_mm) -> np.ndarray:
    """Mean brain cross-section of every slab along ``axis`` (mm²), by partial volume.

    Parameters
    ----------
    b0
        Mean b0 ``(X, Y, Z)``.
    mask
        Bool brain mask ``(X, Y, Z)``.
    axis
        Voxel axis of the profile.
    voxel_mm
        Voxel edges (mm), ``(3,)``.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` with ``n = b0.shape[axis]``: the sum over the slab's mask voxels (the mask
        dilated by one voxel within the slab) of
        ``clip((b0 - background) / (brain - background), 0, 1)`` times the in-plane voxel
        area. ``background`` is the median b0 outside the mask, ``brain`` the
        :data:`BRAIN_QUANTILE` of the b0 inside it.
    """
    b0 = np.asarray(b0, dtype=np.float64)
    others = tuple(a for a in range(3) if a != axis)
    voxel_area = float(np.prod([float(voxel_mm[a]) for a in others]))
    if not mask.any():
        return np.zeros(b0.shape[axis])
    background = float(np.median(b0[~mask])) if (~mask).any() else 0.0
    brain = float(np.quantile(b0[mask], BRAIN_QUANTILE))
    if brain <= background:
        return mask.sum(axis=others).astype(float) * voxel_area
    # One voxel of in-plane margin takes in the partial-volume rim the b0 mask leaves out.
    structure = np.zeros((3, 3, 3), bool)
    structure[tuple(1 if a == axis else slice(None) for a in range(3))] = True
    region = ndimage.binary_dilation(mask, structure=structure)
    fraction = np.clip((b0 - background) / (brain - background), 0.0, 1.0) * region
    return fraction.sum(axis=others) * voxel_area


def dome_cut_mm(profile: np.ndarray, *, step: float, allowance: float = 0.0) -> dict:
    """Brain extent beyond the last element of a slab profile, by a fitted ellipsoid dome.

    Parameters
    ----------
    profile
        Mean brain cross-section per slab (any unit), ``(S,)``, the edge of interest last.
    step
        Slab thickness and spacing along the profile (mm).
    allowance
        Fraction of the largest section that is not counted (a structure that normally
        continues beyond the edge, such as the brainstem).

    Returns
    -------
    dict
        ``cut_mm`` (>= 0), ``margin_mm`` (distance from the last slab with brain to the
        edge, 0 when cut), ``edge_fraction`` (edge section / largest section) and
        ``extrapolated`` (True when the largest section is at the edge and the dome height
        is the anatomical default).
    """
    profile = np.asarray(profile, dtype=float)
    n = profile.size
    width = max(1, int(round(PEAK_WINDOW_MM / step)) // 2 * 2 + 1)
    smooth = np.convolve(np.pad(profile, width // 2, mode="edge"), np.ones(width) / width, mode="valid")
    # The centre of the (possibly flat) run of near-largest sections is the dome's centre.
    peak = int(round(float(np.mean(np.flatnonzero(smooth >= 0.99 * smooth.max())))))
    a = np.clip((profile / smooth[peak] - allowance) / (1.0 - allowance), 0.0, None)
    edge_fraction = float(profile[-1] / smooth[peak])
    result = {"cut_mm": 0.0, "margin_mm": 0.0, "edge_fraction": edge_fraction, "extrapolated": False}
    if a[-1] < EDGE_FRACTION:
        with_brain = np.flatnonzero(a >= EDGE_FRACTION)
        last = int(with_brain.max()) if with_brain.size else -1
        result["margin_mm"] = (n - 1 - last) * step if last >= 0 else n * step
        return result
    edge = n * step  # slab i spans [i step, (i + 1) step]
    if n - 1 - peak <= 1:
        centre = (peak + 0.5) * step
        result.update(cut_mm=max(centre + DOME_HEIGHT_MM - edge, 0.0), extrapolated=True)
        return result
    # The dome's centre is free within a slab of the largest section: with thick slabs the
    # largest section's position is known only to a slab.
    first = max(peak - 1, 0)
    lower = np.arange(first, n) * step
    top = _fit_dome_top(a[first:], lower, step=step, centre_range=((peak - 1) * step, (peak + 2) * step))
    result["cut_mm"] = float(max(top - edge, 0.0))
    return result


def _fit_dome_top(values: np.ndarray, lower: np.ndarray, *, step: float, centre_range: tuple[float, float]) -> float:
    """Height (mm) of the top of the dome ``A0 max(0, 1 - ((h - h0) / c)^2)`` (flat below
    ``h0``) whose slab means best fit ``values`` (slabs ``[lower, lower + step]``).

    A grid over ``h0`` and ``c`` (0.5 mm) with ``A0`` solved in closed form: three numbers
    on a few dozen slabs, and a grid has no local minima to fall into (scipy's least
    squares would need a good start on the clipped slab integral).
    """
    centres = np.arange(centre_range[0], centre_range[1] + 1e-9, 0.5)
    heights = np.arange(DOME_SEARCH_MM[0], DOME_SEARCH_MM[1] + 1e-9, 0.5)
    h0 = centres[:, None, None]
    c = heights[None, :, None]
    u1 = lower[None, None, :] - h0
    model = (_dome_integral(u1 + step, c) - _dome_integral(u1, c)) / step  # (H0, C, S)
    norm = (model**2).sum(-1)
    amplitude = (model * values).sum(-1) / np.maximum(norm, 1e-12)
    residual = ((values - amplitude[..., None] * model) ** 2).sum(-1)
    i, j = np.unravel_index(int(np.argmin(residual)), residual.shape)
    return float(centres[i] + heights[j])


def _dome_integral(u: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Antiderivative of ``max(0, 1 - (u / c)^2)`` for ``u >= 0`` and of 1 for ``u < 0``."""
    inside = np.clip(u, 0.0, c)
    return np.minimum(u, 0.0) + inside - inside**3 / (3 * c**2)


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
