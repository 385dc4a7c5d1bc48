"""The severity scale of each problem, in the physical unit that defines it.

One table serves both sides: the simulator draws magnitudes inside a severity's range,
and detectors grade the magnitude they measure against the same lower bounds. The
bounds come from the literature and common QC practice, not from the shared series.

=================  ============================================  ======  ========  ======
problem            magnitude (unit)                               mild    moderate  severe
=================  ============================================  ======  ========  ======
motion             largest framewise displacement (mm, 50 mm      1.0     2.0       4.0
                   sphere; Power et al. 2012) or interleaved
                   slice shift (voxels)
eddy_current       largest displacement along phase encoding      1.0     2.0       4.0
                   inside the brain (voxels)
missing_slices     signal lost in the worst affected slice        0.3     0.5       0.8
                   (1 - observed/expected)
fov_cutoff         brain beyond the field-of-view edge (mm)       3.0     8.0       20.0
low_resolution     largest voxel edge (mm)                        3.01    4.0       5.0
few_directions     deficit: 30 minus unique directions of the     1       19        25
                   best shell (Jones 2004: >= 30 for robust DTI;
                   < 6 makes DTI impossible)
noise              1 / SNR of the b0 in the mask (SNR 20, 10, 5)  0.05    0.1       0.2
gibbs_ringing      ringing amplitude at edges (fraction of step)  0.05    0.1       0.2
ghosting           ghost-to-signal ratio                          0.03    0.06      0.12
spikes             fraction of (volume, slice) pairs with a       0.0005  0.005     0.02
                   k-space spike (one spiked slice in 2000
                   already matters)
gradient_table     fraction of DW volumes with an inconsistent    0.01    0.2       0.5
                   gradient (flip/permutation counts as 1.0)
=================  ============================================  ======  ========  ======
"""

from __future__ import annotations

import math

from lcid.dwi.vocabulary import SEVERITIES

#: Lower bounds (mild, moderate, severe) of each problem's magnitude.
SCALE: dict[str, tuple[float, float, float]] = {
    "motion": (1.0, 2.0, 4.0),
    "eddy_current": (1.0, 2.0, 4.0),
    "missing_slices": (0.3, 0.5, 0.8),
    "fov_cutoff": (3.0, 8.0, 20.0),
    "low_resolution": (3.01, 4.0, 5.0),
    "few_directions": (1.0, 19.0, 25.0),
    "noise": (0.05, 0.1, 0.2),
    "gibbs_ringing": (0.05, 0.1, 0.2),
    "ghosting": (0.03, 0.06, 0.12),
    "spikes": (0.0005, 0.005, 0.02),
    "gradient_table": (0.01, 0.2, 0.5),
}


def grade(value: float, problem: str) -> str:
    """Severity of a measured magnitude on the problem's scale.

    >>> grade(0.3, "motion"), grade(2.5, "motion")
    ('none', 'moderate')
    """
    mild, moderate, severe = SCALE[problem]
    if not math.isfinite(value) or value < mild:
        return "none"
    if value >= severe:
        return "severe"
    return "moderate" if value >= moderate else "mild"


def magnitude_range(problem: str, severity: str) -> tuple[float, float]:
    """The [low, high) magnitude range of a severity, for the simulator to draw from.

    The ``severe`` range extends to twice its lower bound.

    >>> magnitude_range("motion", "moderate")
    (2.0, 4.0)
    """
    bounds = SCALE[problem]
    index = SEVERITIES.index(severity) - 1
    if index < 0:
        return (0.0, 0.0)
    low = bounds[index]
    high = bounds[index + 1] if index + 1 < len(bounds) else 2 * bounds[index]
    return (low, high)


def confidence(value: float, problem: str, *, softness: float = 0.25) -> float:
    """Probability-like confidence that the problem is present, from its magnitude.

    A logistic in log-magnitude centred on the ``mild`` bound: 0.5 at the bound,
    rising towards 1 above it. ``softness`` is the log-scale width.

    >>> round(confidence(1.0, "motion"), 2)
    0.5
    """
    mild = SCALE[problem][0]
    if not math.isfinite(value) or value <= 0:
        return 0.0
    z = math.log(value / mild) / softness
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))
