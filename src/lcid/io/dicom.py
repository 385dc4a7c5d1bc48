"""DICOM folders to NIfTI + bval/bvec + JSON sidecar, with dcm2niix (the PyPI package)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from lcid.errors import InputError


def dcm2niix_binary() -> str:
    """Path of the dcm2niix executable shipped by the ``dcm2niix`` PyPI package."""
    try:
        import dcm2niix
    except ImportError as exc:  # optional at import time, required when used
        raise InputError("DICOM input needs dcm2niix: pip install dcm2niix") from exc
    return str(dcm2niix.bin)


def looks_like_dicom_folder(folder: Path) -> bool:
    """True when some file below ``folder`` has the DICOM preamble magic ``DICM`` at byte 128."""
    for path in sorted(folder.rglob("*"))[:2000]:
        if path.is_file():
            try:
                with path.open("rb") as handle:
                    handle.seek(128)
                    if handle.read(4) == b"DICM":
                        return True
            except OSError:
                continue
    return False


def convert_dicom_folder(folder: str | Path, out_dir: str | Path) -> list[Path]:
    """Convert every series in a DICOM folder and return the diffusion series among them.

    Parameters
    ----------
    folder
        Folder holding DICOM files (searched recursively by dcm2niix).
    out_dir
        Where dcm2niix writes ``<series>_<description>.nii.gz`` with ``.bval``, ``.bvec``
        and an anonymised BIDS sidecar (``-ba y``: no patient name, ID or birth date).

    Returns
    -------
    list of Path
        NIfTI files that have a ``.bval``/``.bvec`` beside them (the diffusion series).

    Raises
    ------
    InputError
        No DICOM files, conversion failure, or no diffusion series among the converted ones.
    """
    folder, out_dir = Path(folder), Path(out_dir)
    if not folder.is_dir():
        raise InputError(f"not a folder: {folder}")
    if not looks_like_dicom_folder(folder):
        raise InputError(f"{folder.name}: no DICOM files found in this folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [dcm2niix_binary(), "-z", "y", "-b", "y", "-ba", "y", "-f", "%s_%d", "-o", str(out_dir), str(folder)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    images = sorted(out_dir.glob("*.nii.gz"))
    if result.returncode not in (0, 8) and not images:  # 8: some files skipped, others converted
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise InputError(f"{folder.name}: dcm2niix could not convert the DICOM files ({last[0]})")
    diffusion = [p for p in images if p.with_name(p.name[: -len(".nii.gz")] + ".bval").is_file()]
    if not diffusion:
        raise InputError(f"{folder.name}: the DICOM folder holds no diffusion series ({len(images)} other series)")
    return diffusion
