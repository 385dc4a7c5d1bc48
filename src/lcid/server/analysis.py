"""What the web app runs on uploaded files: the DWI check and the question to the model.

These functions are blocking and CPU-heavy; the app calls them in a thread pool. They
know nothing of HTTP: they take paths in a session folder and return plain data.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lcid.errors import InputError
from lcid.server.privacy import deidentify
from lcid.server.uploads import ZipLimits, extract_zip, sniff_file

#: Names under which a session stores its series (never the client's file names).
VOLUME_NAMES = {"nifti": "volume.nii", "nifti_gz": "volume.nii.gz"}


@dataclass(frozen=True)
class Series:
    """A diffusion series in a session folder, ready for the check."""

    image: Path
    bval: Path
    bvec: Path
    sidecar: Path | None


def write_sidecar(source: Path, dest: Path) -> Path:
    """Copy a JSON sidecar without patient identifiers.

    Raises
    ------
    InputError
        When the sidecar is not a JSON object.
    """
    from lcid.io.nifti import read_sidecar

    doc = deidentify(read_sidecar(source))
    dest.write_text(json.dumps(doc, indent=1))
    return dest


def series_from_zip(archive: Path, folder: Path, *, limits: ZipLimits = ZipLimits()) -> Series:
    """Unpack a zip (a DICOM series, or a NIfTI with its bval/bvec) into a session folder.

    DICOM files are converted with :func:`lcid.io.dicom.convert_dicom_folder`; the
    unpacked DICOM (which carries patient data) is deleted before this returns, whatever
    happens. When several series come out, the diffusion series with most volumes is used.

    Raises
    ------
    UploadRejected
        Unsafe or oversized archive.
    InputError
        No diffusion series in the archive.
    """
    unpacked = folder / "unzipped"
    converted = folder / "converted"
    unpacked.mkdir(mode=0o700)
    try:
        files = extract_zip(archive, unpacked, limits=limits)
        niftis = [f for f in files if sniff_file(f) in VOLUME_NAMES]
        if not niftis:
            from lcid.io.dicom import convert_dicom_folder

            converted.mkdir(mode=0o700)
            niftis = list(convert_dicom_folder(unpacked, converted))
        best = _pick_diffusion_series(niftis)
        if best is None:
            raise InputError("the zip holds no diffusion series (no DICOM with b-values, no NIfTI with .bval and .bvec)")
        image, bval, bvec, sidecar = best
        return _adopt(image, bval, bvec, sidecar, folder)
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)
        shutil.rmtree(converted, ignore_errors=True)
        archive.unlink(missing_ok=True)


def _pick_diffusion_series(niftis: list[Path]) -> tuple[Path, Path, Path, Path | None] | None:
    from lcid.io.nifti import find_companion

    candidates = []
    for image in niftis:
        bval, bvec = find_companion(image, ".bval"), find_companion(image, ".bvec")
        if bval is None or bvec is None:
            continue
        n = len(bval.read_text().split())
        candidates.append((n, image, bval, bvec, find_companion(image, ".json")))
    if not candidates:
        return None
    _, image, bval, bvec, sidecar = max(candidates, key=lambda c: c[0])
    return image, bval, bvec, sidecar


def _adopt(image: Path, bval: Path, bvec: Path, sidecar: Path | None, folder: Path) -> Series:
    kind = sniff_file(image)
    if kind not in VOLUME_NAMES:
        raise InputError("the diffusion image in the zip is not a NIfTI file")
    target = folder / VOLUME_NAMES[kind]
    shutil.move(image, target)
    shutil.copyfile(bval, folder / "volume.bval")
    shutil.copyfile(bvec, folder / "volume.bvec")
    clean = write_sidecar(sidecar, folder / "volume.json") if sidecar else None
    return Series(image=target, bval=folder / "volume.bval", bvec=folder / "volume.bvec", sidecar=clean)


@dataclass(frozen=True)
class CheckOutcome:
    """What a check leaves for the page: the findings and the files to fetch."""

    findings: Any
    document: dict[str, Any]
    acquisition: str
    report: Path
    preview: Path


def run_check(series: Series, folder: Path) -> CheckOutcome:
    """Check ``series``, write findings.json, report.html and a preview slice into ``folder``.

    Returns
    -------
    CheckOutcome
        ``document`` is the findings.json contract (DESIGN.md §2); its ``input.path`` is
        the stored file name (``volume.nii.gz``), so no server path or client name leaks out.
    """
    from lcid.advice import attach_advice
    from lcid.dwi.check import run_check as run_detectors
    from lcid.dwi.context import build_context
    from lcid.io.atomic import atomic_write_text
    from lcid.io.nifti import load_dwi

    # The steps of lcid.api.check, spelled out so that the scan is loaded and its context
    # (mask, b0) computed once for both the detectors and the report.
    scan = load_dwi(series.image, bval=series.bval, bvec=series.bvec, sidecar=series.sidecar)
    scan = scan.replace(path=series.image.name)
    context = build_context(scan)
    findings = attach_advice(run_detectors(scan, context=context), scan)
    document = findings.to_dict()
    atomic_write_text(folder / "findings.json", json.dumps(document, indent=2))
    preview = write_preview(context.b0, folder / "preview.png")
    from lcid.report.html import render_report

    html = render_report(findings, scan, context=context, title="lcid check of an uploaded series")
    report = atomic_write_text(folder / "report.html", html)
    return CheckOutcome(
        findings=findings,
        document=document,
        acquisition=describe_acquisition(document["input"]),
        report=report,
        preview=preview,
    )


def describe_acquisition(block: dict[str, Any]) -> str:
    """One line about the acquisition from findings.json's ``input`` block, for the model.

    Examples
    --------
    >>> describe_acquisition({"shape": [72, 72, 39, 21], "voxel_size_mm": [3, 3, 3],
    ...     "shells": [{"bval": 0, "count": 1}, {"bval": 2500, "count": 20}]})
    'DWI 72x72x39, 21 volumes, voxels 3x3x3 mm, shells b=0 (1), b=2500 (20)'
    """
    shape = block.get("shape", [])
    parts = []
    if len(shape) >= 3:
        parts.append("DWI " + "x".join(str(s) for s in shape[:3]))
    if len(shape) == 4:
        parts.append(f"{shape[3]} volumes")
    if block.get("voxel_size_mm"):
        parts.append("voxels " + "x".join(f"{v:g}" for v in block["voxel_size_mm"]) + " mm")
    if block.get("shells"):
        parts.append("shells " + ", ".join(f"b={s['bval']:g} ({s['count']})" for s in block["shells"]))
    return ", ".join(parts)


def write_preview(volume: np.ndarray, path: Path) -> Path:
    """The middle slice along the third voxel axis of ``volume`` ``(X, Y, Z)`` as an 8-bit PNG.

    Intensities are windowed to the 1st-99th percentile of the slice's non-zero voxels,
    and the slice is turned so that the second voxel axis points up.
    """
    from PIL import Image

    plane = np.asarray(volume[:, :, volume.shape[2] // 2], dtype=np.float64)
    values = plane[plane > 0]
    lo, hi = np.percentile(values, [1, 99]) if values.size else (0.0, 1.0)
    scaled = np.clip((plane - lo) / max(hi - lo, 1e-12), 0, 1)
    Image.fromarray(np.rot90(scaled * 255).astype(np.uint8)).save(path)
    return path


#: Preferred default model for the chat, in order: the DWI model, then general radiology VQA.
PREFERRED_MODELS = ("dwi", "vqa-rad")


def installed_models() -> list[str]:
    """Names of the shipped vision-language models (:func:`lcid.vlm.inference.installed_models`)."""
    from lcid.vlm.inference import installed_models as shipped

    return shipped()


def default_model(names: list[str]) -> str | None:
    """The model the page uses unless the user picks another (None when none is installed)."""
    for name in PREFERRED_MODELS:
        if name in names:
            return name
    return names[0] if names else None


def ask_model(
    image: Path,
    *,
    question: str,
    acquisition: str | None,
    findings: dict[str, Any] | None,
    history: list[tuple[str, str]] | None,
    model: str | None,
) -> dict[str, Any]:
    """Ask the vision-language model about ``image``: the JSON of ``lcid ask --json``.

    ``findings`` is a findings.json document, ``history`` earlier (question, answer) turns;
    ``model`` None takes :func:`default_model` of the installed ones.
    """
    from lcid.vlm.inference import ask

    if model is None:
        model = default_model(installed_models()) or "dwi"

    return ask(image, question=question, acq=acquisition or None, findings=findings, model=model, history=history)
