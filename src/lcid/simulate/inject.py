"""Inject a sequence of problems into a scan and keep the ground truth (truth.json)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lcid.io.scan import DWIScan
from lcid.simulate.anatomy import slice_axis
from lcid.simulate.artifacts import artifact
from lcid.simulate.magnitude import check_severity

#: The order in which problems arise in a real acquisition, and so the order of application
#: whatever order they are asked in: the protocol (which directions, which matrix) first;
#: then the head moves inside the scanner, and the field of view cuts the moved head; then
#: the distortions and signal losses of each acquired slice; thermal noise last; a wrong
#: gradient table is a file error made after the scan. A dropout drawn at "moderate" thus
#: stays moderate instead of being averaged away by a later change of resolution.
ACQUISITION_ORDER = (
    "few_directions",
    "low_resolution",
    "motion",
    "fov_cutoff",
    "eddy_current",
    "missing_slices",
    "spikes",
    "ghosting",
    "gibbs_ringing",
    "noise",
    "gradient_table",
)


def inject(scan: DWIScan, problems: Sequence[tuple[str, str]], *, seed: int) -> tuple[DWIScan, dict]:
    """Apply each ``(problem, severity)``, in :data:`ACQUISITION_ORDER`.

    Parameters
    ----------
    scan
        The clean input.
    problems
        ``(problem id, severity)`` pairs; severity is mild, moderate or severe.
    seed
        Seed of every random draw (one ``numpy`` generator, drawn in order of application).

    Returns
    -------
    scan, truth
        The corrupted scan and ``{"lcid_version", "seed", "source", "problems": [{"problem",
        "severity", "parameters", "where"}]}`` in order of application. Indices in ``where`` refer to the returned
        scan: when a later problem removes slices (the field of view cuts a moved head),
        earlier entries are re-indexed (entries that no longer exist are dropped).

    Raises
    ------
    InputError
        Unknown problem or severity, or a severity that cannot be reached on this scan.
    """
    from lcid import __version__

    for problem, severity in problems:  # fail on bad arguments before any work
        artifact(problem)
        check_severity(severity)
    problems = sorted(problems, key=lambda item: ACQUISITION_ORDER.index(item[0]))
    rng = np.random.default_rng(seed)
    entries: list[dict] = []
    for problem, severity in problems:
        module = artifact(problem)
        params = module.sample(rng, scan, severity)
        corrupted, where = module.apply(scan, params)
        if hasattr(module, "index_maps"):
            maps = module.index_maps(scan, params)
            for entry in entries:
                entry["where"] = _reindex(entry["where"], maps)
        entries.append({"problem": problem, "severity": severity, "parameters": params, "where": where})
        scan = corrupted
    truth = {
        "lcid_version": __version__,
        "seed": int(seed),
        "source": scan.path,
        "slice_axis": slice_axis(scan),
        "problems": entries,
    }
    return scan, truth


def _reindex(where: dict, maps: dict[str, list[int]]) -> dict:
    """``where`` with slice indices mapped through ``maps["slices"]`` (-1 drops an entry)."""
    slice_map = maps.get("slices")
    if slice_map is None:
        return where

    def sli(i: int) -> int:
        return slice_map[i] if 0 <= i < len(slice_map) else i

    out = dict(where)
    if "slices" in where:
        out["slices"] = sorted({sli(s) for s in where["slices"] if sli(s) >= 0})
    if "pairs" in where:
        out["pairs"] = sorted([v, sli(s)] for v, s in where["pairs"] if sli(s) >= 0)
    return out
