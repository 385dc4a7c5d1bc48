"""Problems a real source series already has before anything is simulated on it.

A real series is not a clean series by definition: the shared Philips Achieva and Siemens
Prisma series, for example, have brain in their top (or bottom) slice, and ``lcid check``
grades the missing extent as a mild field-of-view cut-off (4-6.5 mm of vertex). Their
pictures show that cut whatever the simulator adds, so a data set that labelled them clean
would teach a model, and score it, against what the picture shows.

The whole-series detectors of ``lcid check`` (:mod:`lcid.dwi.problems`) are run once on each
real source, and each of :data:`NATIVE_PROBLEMS` they grade mild or worse becomes a truth
entry like an injected one (marked ``native``), so the picture-level rules of
:mod:`lcid.vlm.dwi.visibility` decide where it shows. Only problems whose visibility in a
picture follows from geometry are taken: a native Gibbs ring, ghost or spike has no separate
mark to test against the Rose criterion (:mod:`lcid.vlm.dwi.conspicuity`), so it cannot be
labelled picture by picture. The synthetic phantoms are clean by construction and not measured.
"""

from __future__ import annotations

from typing import Any

from lcid.io.scan import DWIScan

#: Problems taken over from the detectors: those labelled by geometry alone.
NATIVE_PROBLEMS: tuple[str, ...] = ("noise", "low_resolution", "fov_cutoff")
#: Voxel anisotropy (largest over smallest edge) above which low resolution shows only across
#: the slices, as for the simulator's ``thick_slices`` mode.
THICK_SLICE_RATIO = 1.5


def native_problems(scan: DWIScan) -> list[dict[str, Any]]:
    """Truth entries (``problem, severity, parameters, where, native``) of the problems of
    :data:`NATIVE_PROBLEMS` that ``lcid check``'s detectors grade mild or worse on ``scan``.

    Parameters
    ----------
    scan
        A real series, as loaded (no simulated problem in it).

    Returns
    -------
    list of dict
        In vocabulary order; empty when the series is clean on these problems or is a phantom.
    """
    from lcid.dwi.check import run_check
    from lcid.simulate.artifacts.fov_cutoff import superior_axis

    findings = run_check(scan, problems=NATIVE_PROBLEMS)
    entries = []
    for finding in findings.findings:
        if not finding.applicable or finding.severity == "none":
            continue
        parameters: dict[str, Any] = {}
        if finding.problem == "fov_cutoff":
            parameters = {"axis": superior_axis(scan.affine)[0],
                          "edges": list(finding.metrics.get("cut_edges", []))}
        elif finding.problem == "low_resolution":
            voxel = scan.voxel_size_mm
            anisotropic = max(voxel) / max(min(voxel), 1e-6) > THICK_SLICE_RATIO
            parameters = {"mode": "thick_slices" if anisotropic else "isotropic"}
        entries.append({"problem": finding.problem, "severity": finding.severity, "parameters": parameters,
                        "where": {}, "native": True})
    return entries


def with_native(truth: dict[str, Any], native: list[dict[str, Any]]) -> dict[str, Any]:
    """``truth`` with the ``native`` entries of problems the simulator did not inject (an
    injected one already stands for the problem, and its parameters describe the picture)."""
    injected = {e["problem"] for e in truth["problems"]}
    extra = [e for e in native if e["problem"] not in injected]
    return {**truth, "problems": [*truth["problems"], *extra]} if extra else truth
