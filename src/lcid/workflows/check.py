"""The ``lcid check`` workflow: resolve inputs, run the check per run, write outputs.

This is the interface layer shared by the command line and the web app: it touches
files (inputs, DICOM conversion, output folders); the analysis it calls is pure.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console

from lcid.dwi.check import run_check
from lcid.dwi.context import Anatomy, CheckContext, build_context
from lcid.dwi.finding import Findings
from lcid.dwi.vocabulary import PROBLEM_IDS
from lcid.errors import InputError
from lcid.io.atomic import atomic_dir
from lcid.io.bids import find_dwi_runs, is_bids_dataset
from lcid.io.dicom import convert_dicom_folder, looks_like_dicom_folder
from lcid.io.nifti import NIFTI_SUFFIXES, find_companion, load_dwi, stem_of
from lcid.io.scan import DWIScan


@dataclass(frozen=True)
class RunInput:
    """One diffusion series to check: image and (optional) explicit companions."""

    label: str
    image: Path
    bval: Path | None = None
    bvec: Path | None = None
    sidecar: Path | None = None


@dataclass(frozen=True, eq=False)
class CheckResult:
    """The check of one run, with what the report needs."""

    label: str
    scan: DWIScan
    context: CheckContext
    findings: Findings


def resolve_inputs(
    inputs: Sequence[Path],
    *,
    work_dir: Path,
    bval: Path | None = None,
    bvec: Path | None = None,
    sidecar: Path | None = None,
) -> list[RunInput]:
    """Turn what the user named into diffusion runs.

    A NIfTI file is one run; a BIDS data set gives each ``dwi`` run; a DICOM folder is
    converted with dcm2niix into ``work_dir``; a plain folder gives every NIfTI in it that
    has a ``.bval`` beside it. ``--bval/--bvec/--sidecar`` apply only to a single image.
    """
    if not inputs:
        raise InputError("no input given")
    if (bval or bvec or sidecar) and (len(inputs) > 1 or Path(inputs[0]).is_dir()):
        raise InputError("--bval/--bvec/--sidecar apply to a single NIfTI image, not to several inputs or a folder")
    runs: list[RunInput] = []
    for number, raw in enumerate(inputs):
        path = Path(raw)
        if not path.exists():
            raise InputError(f"input not found: {path}")
        if path.is_file():
            runs.append(RunInput(stem_of(path).name, path, bval, bvec, sidecar))
        elif is_bids_dataset(path):
            runs += [RunInput(r.label, r.image) for r in find_dwi_runs(path)]
        elif looks_like_dicom_folder(path):
            converted = convert_dicom_folder(path, work_dir / f"dicom{number}")
            runs += [RunInput(stem_of(p).name, p) for p in converted]
        else:
            images = [p for p in sorted(path.iterdir()) if p.name.endswith(NIFTI_SUFFIXES)]
            found = [RunInput(stem_of(p).name, p) for p in images if find_companion(p, ".bval")]
            if not found:
                raise InputError(f"{path.name}: folder holds no NIfTI with a .bval, no DICOM and no BIDS data set")
            runs += found
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):  # same file names from different folders
        runs = [RunInput(f"{i:02d}_{r.label}", r.image, r.bval, r.bvec, r.sidecar) for i, r in enumerate(runs)]
    return runs


def concatenate(scans: Sequence[DWIScan], *, label: str = "concatenated") -> DWIScan:
    """Join runs of identical geometry along the volume axis (e.g. a series split in parts)."""
    first = scans[0]
    for other in scans[1:]:
        if other.data.shape[:3] != first.data.shape[:3] or not np.allclose(other.affine, first.affine, atol=1e-3):
            raise InputError(f"cannot concatenate {Path(other.path).name}: its grid differs from {Path(first.path).name}")
    return first.replace(
        data=np.concatenate([s.data for s in scans], axis=3),
        bvals=np.concatenate([s.bvals for s in scans]),
        bvecs=np.concatenate([s.bvecs for s in scans]),
        path=label,
    )


def reverse_pe_partners(scans: Sequence[DWIScan]) -> dict[int, int]:
    """Pairs of runs with the same grid and opposite phase-encoding polarity (AP/PA).

    Returns a map from each run's index to its partner's index.
    """
    partners: dict[int, int] = {}
    for i, a in enumerate(scans):
        for j, b in enumerate(scans):
            pa, pb = str(a.sidecar.get("PhaseEncodingDirection", "")), str(b.sidecar.get("PhaseEncodingDirection", ""))
            if i == j or i in partners or not pa or not pb:
                continue
            same_axis, opposite = pa[0] == pb[0], pa.endswith("-") != pb.endswith("-")
            if same_axis and opposite and a.data.shape[:3] == b.data.shape[:3]:
                partners[i], partners[j] = j, i
    return partners


def check_inputs(
    inputs: Sequence[Path],
    *,
    out: Path,
    bval: Path | None = None,
    bvec: Path | None = None,
    sidecar: Path | None = None,
    anatomy: Anatomy = "auto",
    concat: bool = False,
    report: bool = True,
    console: Console | None = None,
) -> list[CheckResult]:
    """Check every run named by ``inputs`` and write the outputs into ``out``.

    One run writes ``out/findings.json`` and ``out/report.html``; several runs write
    ``out/<run>/…`` each plus ``out/group.tsv`` (one row per run, one column per problem).
    Everything is written to a temporary folder first and moved into place at the end.
    """
    from lcid.advice import attach_advice

    console = console or Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="lcid-work-") as work, atomic_dir(out) as staging:
        runs = resolve_inputs(inputs, work_dir=Path(work), bval=bval, bvec=bvec, sidecar=sidecar)
        scans = [load_dwi(r.image, bval=r.bval, bvec=r.bvec, sidecar=r.sidecar) for r in runs]
        labels = [r.label for r in runs]
        if concat and len(scans) > 1:
            scans, labels = [concatenate(scans)], ["concatenated"]
        partners = reverse_pe_partners(scans)
        results = []
        for index, (label, scan) in enumerate(zip(labels, scans, strict=True)):
            with console.status(f"[bold]checking {label}[/]") as status:
                context = build_context(scan, anatomy=anatomy)
                findings = run_check(scan, context=context, progress=lambda p, label=label: status.update(f"checking {label}: {p}"))
            if index in partners:
                extra = {"reverse_pe_pair": True, "reverse_pe_partner": labels[partners[index]]}
                findings = dataclasses.replace(findings, input={**findings.input, **extra})
            findings = attach_advice(findings, scan)
            results.append(CheckResult(label, scan, context, findings))
            target = staging if len(scans) == 1 else staging / label
            target.mkdir(parents=True, exist_ok=True)
            _write_outputs(target, results[-1], report=report)
        if len(results) > 1:
            (staging / "group.tsv").write_text(group_table(results))
    for result in results:
        _print_summary(console, result)
    console.print(f"[green]wrote[/] {out}")
    return results


def group_table(results: Sequence[CheckResult]) -> str:
    """TSV with one row per run: severity per problem, then the confidence per problem."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(["run", *PROBLEM_IDS, *[f"{p}_confidence" for p in PROBLEM_IDS]])
    for r in results:
        row = [r.findings[p] for p in PROBLEM_IDS]
        writer.writerow([r.label, *[f.severity for f in row], *[f"{f.confidence:.3f}" for f in row]])
    return buffer.getvalue()


def _write_outputs(folder: Path, result: CheckResult, *, report: bool) -> None:
    (folder / "findings.json").write_text(json.dumps(result.findings.to_dict(), indent=2) + "\n")
    if report:
        from lcid.report.html import render_report

        html = render_report(result.findings, result.scan, context=result.context, title=f"lcid check: {result.label}")
        (folder / "report.html").write_text(html)


def _print_summary(console: Console, result: CheckResult) -> None:
    from lcid.report.summary import terminal_summary

    console.print(f"[bold]{result.label}[/]")
    console.print(terminal_summary(result.findings))
