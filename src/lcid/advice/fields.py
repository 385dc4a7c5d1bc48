"""The per-scan facts that fill the knowledge base's templates and decide its conditions.

Everything here is read defensively: a finding built by hand, a scan without sidecar or
a ``findings.input`` without shells all give fields that are simply absent (the template
then says "unknown" or drops the optional part).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lcid.advice.template import format_indices, format_number, is_missing
from lcid.dwi.finding import Finding
from lcid.io.scan import DWIScan

_AXIS_LETTERS = {"L": "left-right", "R": "left-right", "A": "anterior-posterior", "P": "anterior-posterior",
                 "S": "superior-inferior", "I": "superior-inferior"}  # fmt: skip


def scan_fields(scan: DWIScan | None, input_doc: dict[str, Any]) -> dict[str, Any]:
    """Fields shared by every finding of one scan (phase encoding, shells, geometry, file names).

    Parameters
    ----------
    scan
        The checked series (may be None when only a findings.json is at hand).
    input_doc
        ``Findings.input``: shape, voxel size (mm), shells, phase-encoding axis, orientation.
    """
    sidecar = dict(scan.sidecar) if scan is not None else {}
    fields: dict[str, Any] = {}
    pe = str(sidecar.get("PhaseEncodingDirection") or input_doc.get("phase_encoding_axis") or "")
    orientation = str(input_doc.get("orientation") or (scan.orientation if scan is not None else ""))
    if pe[:1] in ("i", "j", "k"):
        axis = "ijk".index(pe[0])
        fields["pe"] = pe
        anatomical = _AXIS_LETTERS.get(orientation[axis:axis + 1], "")
        fields["pe_axis"] = f"the {pe} axis" + (f" ({anatomical} in this image)" if anatomical else "")
        vector = [0, 0, 0]
        vector[axis] = -1 if pe.endswith("-") else 1
        fields["pe_vector"] = " ".join(str(v) for v in vector)
    readout = sidecar.get("TotalReadoutTime")
    if isinstance(readout, (int, float)) and readout > 0:
        fields["readout"] = f"{float(readout):.4g}"

    shells = _shells(scan, input_doc)
    if shells:
        fields["shells"] = ", ".join(_shell_text(s) for s in shells)
        dw = [s for s in shells if s.get("bval", 0) > 50]
        fields["n_dw_shells"] = len(dw)
        fields["n_b0"] = sum(int(s.get("count", 0)) for s in shells if s.get("bval", 0) <= 50)
        if dw:
            fields["dw_shells"] = ", ".join(_shell_text(s) for s in dw)
            best = max(dw, key=lambda s: int(s.get("unique_directions", s.get("count", 0))))
            fields["best_directions"] = int(best.get("unique_directions", best.get("count", 0)))
            fields["best_bval"] = int(best["bval"])

    voxel = input_doc.get("voxel_size_mm") or (list(scan.voxel_size_mm) if scan is not None else None)
    if voxel:
        fields["voxel"] = " x ".join(f"{float(v):.3g}" for v in voxel) + " mm"
        fields["max_voxel_mm"] = f"{max(float(v) for v in voxel):.3g}"
    shape = input_doc.get("shape") or (list(scan.shape) if scan is not None else None)
    if shape:
        fields["shape"] = " x ".join(str(int(s)) for s in shape)
        if len(shape) == 4:
            fields["n_volumes"] = int(shape[3])
        if len(shape) >= 3:
            fields["n_slices"] = int(shape[2])
    if input_doc.get("object"):
        fields["object"] = str(input_doc["object"])

    path = str(input_doc.get("path") or (scan.path if scan is not None else "") or "dwi.nii.gz")
    name = Path(path).name
    stem = name[: -len(".nii.gz")] if name.endswith(".nii.gz") else Path(name).stem
    fields.update(dwi=name, stem=stem, bval=f"{stem}.bval", bvec=f"{stem}.bvec", sidecar_file=f"{stem}.json")
    # Commands are shown even when a value is unknown: a visible placeholder to fill in.
    fields.setdefault("pe", "unknown")
    fields.setdefault("pe_vector", "<phase-encoding vector, e.g. 0 -1 0>")
    fields.setdefault("readout", "<TotalReadoutTime in s>")
    fields.setdefault("n_volumes", "<number of volumes>")
    fields.setdefault("keep_volumes", "<volumes to keep, e.g. 0-4,6-31>")
    return fields


def conditions(scan: DWIScan | None, input_doc: dict[str, Any], fields: dict[str, Any]) -> dict[str, bool]:
    """Truth of each condition a remedy may require (see ``knowledge.CONDITIONS``)."""
    sidecar = scan.sidecar if scan is not None else {}
    reverse = bool(input_doc.get("reverse_pe_pair", False))
    pe_known = fields.get("pe", "unknown") != "unknown"
    multi = int(fields.get("n_dw_shells", 0)) >= 2
    phantom = input_doc.get("object") == "phantom"
    return {
        "reverse_pe_pair": reverse,
        "no_reverse_pe_pair": not reverse,
        "pe_known": pe_known,
        "pe_unknown": not pe_known,
        "multi_shell": multi,
        "single_shell": not multi and int(fields.get("n_dw_shells", 0)) == 1,
        "has_slice_timing": not is_missing(sidecar.get("SliceTiming")),
        "brain": not phantom,
        "phantom": phantom,
    }


def finding_fields(finding: Finding, input_doc: dict[str, Any], *, n_volumes: int | None = None) -> dict[str, Any]:
    """Fields of one finding: where it is, its metrics, severity and (when not applicable) why.

    ``n_volumes`` (the series length) lets ``keep_volumes`` list the unaffected volumes in
    DIPY's ``--vol_idx`` syntax (``0-2,8,10-12``).
    """
    where = finding.where or {}
    fields: dict[str, Any] = {"severity": finding.severity, "confidence": f"{finding.confidence:.0%}"}
    volumes = _ints(where.get("volumes"))
    slices = _ints(where.get("slices"))
    pairs = _pairs(where.get("pairs"))
    if not volumes and pairs:
        volumes = sorted({v for v, _ in pairs})
    if not slices and pairs:
        slices = sorted({s for _, s in pairs})
    if volumes:
        fields["volumes"] = format_indices(volumes)
        fields["n_affected_volumes"] = len(volumes)
        if n_volumes:
            keep = [v for v in range(n_volumes) if v not in set(volumes)]
            fields["keep_volumes"] = format_indices(keep, limit=len(keep) + 1).replace(" and ", ",").replace(", ", ",")
    if slices:
        fields["slices"] = format_indices(slices)
        fields["n_affected_slices"] = len(slices)
    if pairs:
        shown = ", ".join(f"volume {v} slice {s}" for v, s in pairs[:4])
        fields["pairs"] = shown + (f" and {len(pairs) - 4} more" if len(pairs) > 4 else "")
        fields["n_pairs"] = len(pairs)
    metrics = {k: _scalar(v) for k, v in (finding.metrics or {}).items()}
    fields["m"] = {k: v for k, v in metrics.items() if not is_missing(v)}
    listed = [f"{k} = {format_number(v)}" for k, v in fields["m"].items() if not isinstance(v, (dict, str))]
    if listed:
        fields["metrics"] = ", ".join(listed)
    if fields["m"].get("flipped") is True and isinstance(fields["m"].get("best_transform"), str):
        fields["axis_fix"] = fields["m"]["best_transform"]  # only a found flip is worth naming
    fields["reason"] = _reason(finding, input_doc)
    return fields


def _reason(finding: Finding, input_doc: dict[str, Any]) -> str:
    for source in (finding.metrics, finding.evidence, finding.where):
        for key, value in (source or {}).items():
            if (key == "reason" or key.endswith("_reason")) and isinstance(value, str) and value.strip():
                return value.strip().rstrip(".")
    if input_doc.get("object") == "phantom":
        return "the object is a phantom, not a brain, and this check needs brain anatomy"
    return "the data needed for this check are not available in this scan"


def _shells(scan: DWIScan | None, input_doc: dict[str, Any]) -> list[dict[str, Any]]:
    shells = input_doc.get("shells")
    if isinstance(shells, list) and shells and all(isinstance(s, dict) and "bval" in s for s in shells):
        return shells
    if scan is None:
        return []
    from lcid.dwi.gradients import shells as compute_shells

    return [s.to_dict() for s in compute_shells(scan.bvals, scan.bvecs)]


def _shell_text(shell: dict[str, Any]) -> str:
    bval = int(round(float(shell.get("bval", 0))))
    count = int(shell.get("count", 0))
    if bval <= 50:
        return f"b=0 x{count}"
    unique = shell.get("unique_directions")
    return f"b={bval} s/mm² ({unique if unique is not None else count} directions)"


def _ints(values: Any) -> list[int]:
    if values is None:
        return []
    try:
        return sorted({int(v) for v in np.asarray(values).ravel()})
    except (TypeError, ValueError):
        return []


def _pairs(values: Any) -> list[tuple[int, int]]:
    if values is None:
        return []
    try:
        array = np.asarray(values, dtype=int).reshape(-1, 2)
    except (TypeError, ValueError):
        return []
    return sorted({(int(v), int(s)) for v, s in array})


def _scalar(value: Any) -> Any:
    if hasattr(value, "tolist"):
        value = value.tolist()
    return value
