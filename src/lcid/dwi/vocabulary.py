"""The problem vocabulary shared by the check, the simulator and the models (DESIGN.md §2)."""

from __future__ import annotations

from typing import Literal, get_args

ProblemId = Literal[
    "eddy_current",
    "motion",
    "low_resolution",
    "few_directions",
    "missing_slices",
    "fov_cutoff",
    "noise",
    "gibbs_ringing",
    "ghosting",
    "spikes",
    "gradient_table",
]
PROBLEM_IDS: tuple[str, ...] = get_args(ProblemId)

#: The six problems the check must find well on real data.
CORE_PROBLEMS: tuple[str, ...] = (
    "motion",
    "eddy_current",
    "missing_slices",
    "fov_cutoff",
    "low_resolution",
    "few_directions",
)

Severity = Literal["none", "mild", "moderate", "severe"]
SEVERITIES: tuple[str, ...] = get_args(Severity)


def severity_rank(severity: str) -> int:
    """Order of a severity: ``none`` 0 … ``severe`` 3.

    >>> severity_rank("moderate")
    2
    """
    return SEVERITIES.index(severity)
