"""Drawing a problem's magnitude inside a severity's range of the shared scale."""

from __future__ import annotations

import numpy as np

from lcid.dwi.severity import magnitude_range
from lcid.dwi.vocabulary import SEVERITIES
from lcid.errors import InputError

#: Severities the simulator can inject (``none`` means: do not inject).
INJECTABLE = tuple(s for s in SEVERITIES if s != "none")


def draw_magnitude(rng: np.random.Generator, problem: str, severity: str, *, cap: float | None = None) -> float:
    """A magnitude drawn uniformly in ``magnitude_range(problem, severity)``.

    Parameters
    ----------
    cap
        Physical upper limit (e.g. 1.0 for a fraction); the range is clipped to it.
    """
    check_severity(severity)
    low, high = magnitude_range(problem, severity)
    if cap is not None:
        high = min(high, cap)
    return float(rng.uniform(low, high)) if high > low else float(low)


def check_severity(severity: str) -> None:
    """Raise :class:`InputError` unless ``severity`` is one of mild, moderate, severe."""
    if severity not in INJECTABLE:
        raise InputError(f"unknown severity {severity!r}: choose one of {', '.join(INJECTABLE)}")
