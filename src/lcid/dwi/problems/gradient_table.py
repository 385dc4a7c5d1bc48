"""Gradient-table problems: inconsistent entries, and flipped or permuted axes.

Two checks:

1. Consistency of each entry (always applies): a diffusion-weighted b-value with a zero
   vector, a vector that is not of unit length (unless the table encodes b-scaling in the
   vector norm, MRtrix/Siemens style), b-values that look like the wrong unit.
2. Axis flips and permutations (brain data with >= 6 directions only): one DTI fit, then the
   fibre coherence of the principal eigenvectors under each of the 24 signed axis
   permutations (Jeurissen et al. 2014, MedIA 18:953 — MRtrix ``dwigradcheck``; Schilling et
   al. 2019, MRI 61:129, fibre coherence index). Relabelling the b-vectors by a signed
   permutation ``P`` turns every tensor ``D`` into ``P D P^T``, so the candidates need no
   refit: each is scored by how well the neighbour *along* ``P e`` shares the orientation.

Magnitude on the shared scale: fraction of DW volumes with an inconsistent entry; a detected
flip or permutation counts as 1.0.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import ndimage

from lcid.dwi.context import CheckContext
from lcid.dwi.finding import Finding
from lcid.dwi.gradients import B0_THRESHOLD, unique_directions
from lcid.dwi.severity import confidence, grade
from lcid.io.scan import DWIScan

PROBLEM = "gradient_table"
#: A vector counts as unit length within this tolerance (dcm2niix writes 6 decimals; some
#: vendors 4).
UNIT_TOLERANCE = 0.01
#: b-values above this (s/mm²) are taken to be in s/m² (1000 s/mm² = 1e9 s/m²).
MAX_PLAUSIBLE_B = 1e5
#: Fractional anisotropy above which a voxel enters the coherence score (white matter).
FA_THRESHOLD = 0.3
#: Fewest white-matter voxels for a meaningful coherence score.
MIN_WM_VOXELS = 200
#: Relative coherence gain of the best candidate over the table as given above which the
#: table is called flipped/permuted. dwigradcheck takes the best candidate outright; a small
#: margin keeps noise from flipping a correct table.
MIN_GAIN = 0.02

_AXES = "xyz"


def detect(scan: DWIScan, context: CheckContext) -> Finding:
    """Check gradient-table consistency and, on brain data, axis flips/permutations.

    Metrics: counts of each inconsistency, ``inconsistent_fraction``, and for the axis check
    ``axis_check_applicable``, ``best_transform`` (e.g. ``"-x,y,z"``: the corrected table is
    ``(-bx, by, bz)``), ``coherence_as_given``, ``coherence_best`` and ``coherence_gain``.
    """
    bvals = np.asarray(scan.bvals, dtype=float)
    bvecs = np.asarray(scan.bvecs, dtype=float)
    issues = table_issues(bvals, bvecs)
    bad = issues.pop("bad_volumes")
    dw = np.flatnonzero(bvals > B0_THRESHOLD)
    fraction = float(len(bad)) / max(len(dw), 1) if len(dw) else float(len(bad) > 0)
    metrics: dict = {**issues, "inconsistent_volumes": len(bad), "inconsistent_fraction": fraction}

    axis = _axis_check(scan, context, bvals, bvecs, exclude=bad)
    metrics.update({k: v for k, v in axis.items() if k != "scores"})
    flipped = bool(axis.get("flipped", False))
    magnitude = 1.0 if flipped else fraction
    volumes = sorted(set(dw.tolist()) | set(bad)) if flipped else list(bad)
    conf = confidence(magnitude, PROBLEM)
    if axis.get("axis_check_applicable"):
        # A flip's probability grows with the coherence the best relabelling gains.
        conf = max(conf, _gain_confidence(axis["coherence_gain"]))
    return Finding(
        problem=PROBLEM,
        severity=grade(magnitude, PROBLEM),
        confidence=float(conf),
        metrics=metrics,
        where={"volumes": volumes, "slices": []},
        evidence={"coherence_by_transform": axis.get("scores", {})},
    )


def table_issues(bvals: np.ndarray, bvecs: np.ndarray) -> dict:
    """Entry-level inconsistencies of a gradient table.

    Parameters
    ----------
    bvals
        ``(N,)`` s/mm².
    bvecs
        ``(N, 3)`` as read from the file (not normalised).

    Returns
    -------
    dict
        ``zero_vector_dw`` (b > b0 threshold with a zero vector), ``non_unit_vectors``,
        ``bvec_norm_encodes_b`` (True when all DW volumes share one nominal b and the norms
        scale it in levels of at least two directions: a convention, not an error), ``bval_unit_suspect`` (``""``,
        ``"ms/um2"`` or ``"s/m2"``) and ``bad_volumes`` (sorted indices).
    """
    norms = np.linalg.norm(bvecs, axis=1)
    is_dw = bvals > B0_THRESHOLD
    zero = is_dw & (norms < 1e-6)
    off_unit = is_dw & (norms >= 1e-6) & (np.abs(norms - 1.0) > UNIT_TOLERANCE)
    dw_b = bvals[is_dw]
    # The convention writes one nominal b and shells as norm levels, each with several
    # directions; a lone short vector in a unit table is an error, not a shell.
    _, level_counts = np.unique(np.round(norms[off_unit], 2), return_counts=True)
    norm_encodes_b = bool(
        off_unit.any()
        and np.ptp(dw_b) <= 1.0
        and np.all(norms[is_dw] <= 1.0 + UNIT_TOLERANCE)
        and level_counts.min() >= 2
    )
    non_unit = np.zeros_like(off_unit) if norm_encodes_b else off_unit
    unit_suspect = ""
    bad = zero | non_unit
    if not is_dw.any() and np.any((bvals > 0) & (np.abs(norms - 1.0) <= UNIT_TOLERANCE)):
        unit_suspect = "ms/um2"  # e.g. b = 1 with unit vectors: ms/µm², not s/mm²
        bad |= (bvals > 0) & (norms > 1e-6)
    elif np.any(bvals > MAX_PLAUSIBLE_B):
        unit_suspect = "s/m2"
        bad |= bvals > MAX_PLAUSIBLE_B
    return {
        "zero_vector_dw": int(zero.sum()),
        "non_unit_vectors": int(non_unit.sum()),
        "bvec_norm_encodes_b": norm_encodes_b,
        "bval_unit_suspect": unit_suspect,
        "bad_volumes": [int(i) for i in np.flatnonzero(bad)],
    }


def signed_permutations() -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """The 24 axis relabellings that matter for antipodally symmetric data.

    Each is ``(perm, signs)``: the corrected vector is ``signs * v[perm]``. Flipping two
    axes equals flipping the third for an axis (v ~ -v), so flips are none, x, y or z.
    """
    flips = [(1, 1, 1), (-1, 1, 1), (1, -1, 1), (1, 1, -1)]
    return [(p, s) for p in itertools.permutations(range(3)) for s in flips]  # type: ignore[misc]


def transform_name(perm: tuple[int, int, int], signs: tuple[int, int, int]) -> str:
    """``((1, 0, 2), (-1, 1, 1))`` -> ``"-y,x,z"``: the corrected table is ``(-by, bx, bz)``."""
    return ",".join(("-" if s < 0 else "") + _AXES[p] for p, s in zip(perm, signs, strict=True))


def coherence_scores(
    evecs: np.ndarray, fa: np.ndarray, wm: np.ndarray, voxel_size_mm: tuple[float, float, float]
) -> dict[str, float]:
    """Fibre-coherence score of each of the 24 signed axis permutations.

    Parameters
    ----------
    evecs
        Principal eigenvectors in voxel-axis space, ``(X, Y, Z, 3)``.
    fa
        Fractional anisotropy ``(X, Y, Z)``, used as the weight.
    wm
        Voxels to score, bool ``(X, Y, Z)``; none on the array's faces.
    voxel_size_mm
        Voxel edges, to turn a direction in mm into a step between voxels.

    Returns
    -------
    dict
        ``transform name -> score`` in [0, 1]: the FA-weighted mean of ``|e(x) . e(x ± d)|``
        where ``d`` is the neighbour step (of the 26) closest to the transformed ``P e(x)``.
    """
    offsets = np.array([o for o in itertools.product((-1, 0, 1), repeat=3) if o > (0, 0, 0)])  # 13
    steps = offsets * np.asarray(voxel_size_mm)
    steps /= np.linalg.norm(steps, axis=1, keepdims=True)
    idx = np.argwhere(wm)
    e = evecs[wm]
    weight = fa[wm]
    # Coherence with the two neighbours along each of the 13 step directions.
    along = np.empty((len(idx), len(offsets)))
    for j, offset in enumerate(offsets):
        total = np.zeros(len(idx))
        for sign in (1, -1):
            nb = idx + sign * offset  # in bounds: ``wm`` excludes the array's faces
            total += np.abs(np.sum(e * evecs[nb[:, 0], nb[:, 1], nb[:, 2]], axis=1))
        along[:, j] = total / 2
    scores = {}
    for perm, signs in signed_permutations():
        moved = e[:, list(perm)] * np.asarray(signs)
        j = np.argmax(np.abs(moved @ steps.T), axis=1)
        scores[transform_name(perm, signs)] = float(
            np.sum(weight * along[np.arange(len(idx)), j]) / np.sum(weight)
        )
    return scores


def _axis_check(
    scan: DWIScan, context: CheckContext, bvals: np.ndarray, bvecs: np.ndarray, *, exclude: list[int]
) -> dict:
    keep = np.setdiff1d(np.arange(len(bvals)), exclude)
    dw = keep[bvals[keep] > B0_THRESHOLD]
    reason = ""
    if context.is_phantom:
        reason = "phantom: isotropic object has no fibre orientation"
    elif unique_directions(bvecs[dw]) < 6:
        reason = "fewer than 6 usable directions: no tensor fit"
    elif not any(bvals[keep] <= B0_THRESHOLD):
        reason = "no b0 volume"
    if reason:
        return {"axis_check_applicable": False, "axis_check_reason": reason}
    from dipy.core.gradients import gradient_table
    from dipy.reconst.dti import TensorModel

    # The central half of the object's slices holds enough white matter and halves the fit.
    z = np.flatnonzero(context.mask.any(axis=(0, 1)))
    lo, hi = z[0] + len(z) // 4, z[0] + (3 * len(z)) // 4 + 1
    mask = ndimage.binary_erosion(context.mask, iterations=1)[:, :, lo:hi]
    vecs = bvecs[keep].copy()
    norms = np.linalg.norm(vecs, axis=1)
    vecs[norms > 1e-6] /= norms[norms > 1e-6, None]
    gtab = gradient_table(bvals[keep], bvecs=vecs, b0_threshold=B0_THRESHOLD)
    fit = TensorModel(gtab, fit_method="LS").fit(scan.data[:, :, lo:hi][..., keep], mask=mask)
    fa = np.nan_to_num(fit.fa)
    evecs = np.nan_to_num(fit.evecs[..., 0])  # principal eigenvector, (X, Y, Z', 3)
    if np.linalg.det(scan.affine[:3, :3]) > 0:
        evecs = evecs * np.array([-1.0, 1.0, 1.0])  # FSL bvecs are radiological: x is flipped
    wm = mask & (fa > FA_THRESHOLD)
    # Voxels on the array's faces have neighbours outside it: leave them out, not clipped.
    wm[[0, -1], :, :] = wm[:, [0, -1], :] = wm[:, :, [0, -1]] = False
    if wm.sum() < MIN_WM_VOXELS:
        return {"axis_check_applicable": False, "axis_check_reason": "too little white matter (FA > 0.3)"}
    scores = coherence_scores(evecs, fa, wm, scan.voxel_size_mm)
    given = scores["x,y,z"]
    best = max(scores, key=scores.__getitem__)
    gain = scores[best] / given - 1.0 if given > 0 else 0.0
    return {
        "axis_check_applicable": True,
        "white_matter_voxels": int(wm.sum()),
        "coherence_as_given": given,
        "coherence_best": scores[best],
        "best_transform": best,
        "coherence_gain": gain,
        "flipped": best != "x,y,z" and gain > MIN_GAIN,
        "scores": scores,
    }


def _gain_confidence(gain: float) -> float:
    """Logistic in the relative coherence gain: 0.5 at :data:`MIN_GAIN`, ~0.95 at twice it."""
    z = (gain - MIN_GAIN) / (MIN_GAIN / 3)
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))
