"""Too few unique gradient directions (or b0s) for the diffusion models a user may fit.

Directions are counted per shell up to sign (antipodal pairs are one direction:
:func:`lcid.dwi.gradients.unique_directions`). The magnitude graded is the deficit
``30 - directions of the best shell`` (Jones 2004, MRM 51:807: >= 30 unique directions for
robust DTI). Coverage matters as much as count: a shell's *effective* directions
(:func:`lcid.dwi.gradients.effective_directions`, the A-optimal equivalent of a uniform set)
falls well below its count when the directions bunch in a cap or lie in a plane; such a
shell (effective < :data:`POOR_COVERAGE_EFFICIENCY` x count) counts with its effective number.

Minimums behind ``supports``:

==============  ===================================================================
``dti``         a shell with >= 6 non-coplanar directions, and a b0 (or a second shell)
``dti_robust``  a shell with >= 30 unique, well-spread directions (Jones 2004)
``dki``         >= 2 non-zero shells with >= 15 directions each, highest b 1800-3100
                s/mm² (Jensen & Helpern 2010, NMR Biomed 23:698), and a b0
``csd_lmax6``   a shell at b >= 1000 s/mm² with >= 28 directions (28 coefficients of a
                symmetric lmax-6 spherical-harmonic fit; Tournier et al. 2013, NMR Biomed
                26:1775)
``csd_lmax8``   a shell at b >= 2000 s/mm² with >= 45 directions (their recommendation)
==============  ===================================================================
"""

from __future__ import annotations

import numpy as np

from lcid.dwi.context import CheckContext
from lcid.dwi.finding import Finding
from lcid.dwi.gradients import B0_THRESHOLD, SHELL_TOLERANCE, coverage, effective_directions
from lcid.dwi.severity import confidence, grade
from lcid.io.scan import DWIScan

PROBLEM = "few_directions"
#: Unique directions for robust DTI (Jones 2004); the deficit is measured from here.
ROBUST_DIRECTIONS = 30
#: A shell whose effective directions fall below this fraction of its count covers the
#: sphere poorly (random sets score about 0.85, designed sets about 1.0).
POOR_COVERAGE_EFFICIENCY = 0.7
#: (minimum directions, minimum b in s/mm²) of the spherical-deconvolution entries.
CSD_LMAX6 = (28, 1000.0)
CSD_LMAX8 = (45, 2000.0)
#: DKI: minimum directions per shell, and the range of the highest b-value (s/mm²).
DKI_DIRECTIONS = 15
DKI_B_RANGE = (1800.0, 3100.0)


def detect(scan: DWIScan, context: CheckContext) -> Finding:
    """Count unique directions per shell, judge their coverage, and list supported models.

    Parameters
    ----------
    scan
        The series; its b-vectors ``(N, 3)`` and b-values (s/mm²).
    context
        Precomputed shells and b0 volumes.

    Returns
    -------
    Finding
        Metrics ``shells`` (per shell: b, volumes, unique and effective directions,
        condition number, largest gap in degrees), ``b0_count``, ``best_shell_bval``,
        ``best_shell_directions``, ``deficit``, ``poor_coverage_bvals``, ``supports``.
    """
    summaries = [
        shell_summary(scan.bvecs[list(shell.volumes)], bval=shell.bval, unique=shell.unique_directions)
        for shell in context.shells
        if shell.bval > B0_THRESHOLD
    ]
    b0_count = len(context.b0_volumes)
    if not summaries:
        metrics = {"shells": [], "b0_count": b0_count, "supports": [], "reason": "no diffusion-weighted volumes"}
        return Finding(problem=PROBLEM, severity="severe", confidence=1.0, metrics=metrics)
    best = max(summaries, key=lambda s: (s["counted_directions"], s["bval"]))
    deficit = max(ROBUST_DIRECTIONS - best["counted_directions"], 0.0)
    metrics = {
        "shells": summaries,
        "b0_count": b0_count,
        "best_shell_bval": best["bval"],
        "best_shell_directions": best["unique_directions"],
        "best_shell_effective_directions": best["effective_directions"],
        "deficit": round(deficit, 2),
        "poor_coverage_bvals": [s["bval"] for s in summaries if s["poor_coverage"]],
        "supports": supported_models(summaries, b0_count=b0_count),
    }
    return Finding(
        problem=PROBLEM,
        severity=grade(deficit, PROBLEM),
        confidence=confidence(deficit, PROBLEM),
        metrics=metrics,
    )


def shell_summary(vectors: np.ndarray, *, bval: float, unique: int) -> dict:
    """Direction facts of one shell.

    Parameters
    ----------
    vectors
        b-vectors of the shell's volumes, ``(K, 3)``.
    bval
        Nominal b-value (s/mm²).
    unique
        Unique directions (antipodal pairs once).
    """
    effective = effective_directions(vectors)
    cover = coverage(vectors)
    # Fewer than 6 directions is a count problem (no tensor at all), not a coverage one.
    poor = unique >= 6 and effective < POOR_COVERAGE_EFFICIENCY * unique
    return {
        "bval": int(round(bval)),
        "volumes": int(len(vectors)),
        "unique_directions": int(unique),
        "effective_directions": round(effective, 2),
        "condition_number": round(cover["condition_number"], 3) if np.isfinite(cover["condition_number"]) else None,
        "max_gap_deg": round(cover["max_gap_deg"], 1),
        "poor_coverage": bool(poor),
        "counted_directions": round(effective, 2) if poor else int(unique),
    }


def supported_models(summaries: list[dict], *, b0_count: int) -> list[str]:
    """Which models the gradient scheme supports (see the module table).

    >>> shell = {"bval": 1000, "counted_directions": 32, "effective_directions": 31.5, "poor_coverage": False}
    >>> supported_models([shell], b0_count=1)
    ['dti', 'dti_robust', 'csd_lmax6']
    """
    tol = SHELL_TOLERANCE
    has_reference = b0_count > 0 or len(summaries) >= 2
    supports = []
    if has_reference and any(s["effective_directions"] > 0 and s["counted_directions"] >= 6 for s in summaries):
        supports.append("dti")
    if has_reference and any(s["counted_directions"] >= ROBUST_DIRECTIONS and not s["poor_coverage"] for s in summaries):
        supports.append("dti_robust")
    dki_shells = [s for s in summaries if s["counted_directions"] >= DKI_DIRECTIONS]
    if b0_count > 0 and len(dki_shells) >= 2:
        b_max = max(s["bval"] for s in dki_shells)
        if DKI_B_RANGE[0] - tol <= b_max <= DKI_B_RANGE[1] + tol:
            supports.append("dki")
    for name, (count, b_min) in (("csd_lmax6", CSD_LMAX6), ("csd_lmax8", CSD_LMAX8)):
        if any(s["counted_directions"] >= count and s["bval"] >= b_min - tol for s in summaries):
            supports.append(name)
    return supports
