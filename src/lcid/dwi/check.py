"""Run every problem detector on a scan and collect one finding per problem id."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from lcid.dwi.context import Anatomy, CheckContext, build_context
from lcid.dwi.finding import Finding, Findings
from lcid.dwi.vocabulary import PROBLEM_IDS
from lcid.io.nifti import missing_sidecar_fields
from lcid.io.scan import DWIScan

Detector = Callable[[DWIScan, CheckContext], Finding]


def detector(problem: str) -> Detector:
    """The ``detect`` function of ``lcid.dwi.problems.<problem>``."""
    module = importlib.import_module(f"lcid.dwi.problems.{problem}")
    return module.detect


def run_check(
    scan: DWIScan,
    *,
    context: CheckContext | None = None,
    anatomy: Anatomy = "auto",
    problems: tuple[str, ...] = PROBLEM_IDS,
    progress: Callable[[str], None] | None = None,
) -> Findings:
    """Run the detectors on ``scan``.

    Parameters
    ----------
    scan
        The loaded series.
    context
        Precomputed context (mask, shells, ...); built from ``scan`` when not given.
    anatomy
        ``auto`` decides brain vs phantom from the diffusivity; brain-specific checks
        report ``applicable: false`` on a phantom.
    problems
        Which detectors to run (default: all, in vocabulary order).
    progress
        Called with each problem id before its detector runs.

    Returns
    -------
    Findings
        One finding per problem, without advice (see :func:`lcid.advice.attach_advice`).
    """
    context = context if context is not None else build_context(scan, anatomy=anatomy)
    findings = []
    for problem in problems:
        if progress:
            progress(problem)
        findings.append(detector(problem)(scan, context))
    warnings = [f"sidecar field {name} missing" for name in missing_sidecar_fields(scan.sidecar)]
    if context.pe_axis is None:
        warnings.append("phase-encoding direction unknown: eddy-current checks assume the second voxel axis (j)")
    if context.is_phantom:
        warnings.append("the object looks like a phantom (free-water diffusivity): brain-specific checks do not apply")
    return Findings(input=describe_input(scan, context), findings=tuple(findings), warnings=tuple(warnings))


def describe_input(scan: DWIScan, context: CheckContext) -> dict:
    """The ``input`` block of findings.json (no patient identifiers: only geometry and gradients)."""
    pe = scan.sidecar.get("PhaseEncodingDirection")
    return {
        "path": scan.path,
        "shape": list(scan.shape),
        "voxel_size_mm": [round(v, 3) for v in scan.voxel_size_mm],
        "shells": [s.to_dict() for s in context.shells],
        "phase_encoding_axis": pe if pe else None,
        "orientation": scan.orientation,
        "object": "phantom" if context.is_phantom else "brain",
        "mean_diffusivity_mm2_s": context.mean_diffusivity,
    }
