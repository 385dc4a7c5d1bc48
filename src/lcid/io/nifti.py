"""Loading a 4D diffusion NIfTI with its FSL gradients and BIDS/dcm2niix sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lcid.errors import InputError
from lcid.io.gradient_files import read_bvals, read_bvecs
from lcid.io.scan import DWIScan

NIFTI_SUFFIXES = (".nii.gz", ".nii")

#: Sidecar fields the check uses; missing ones become warnings.
SIDECAR_FIELDS = (
    "PhaseEncodingDirection",
    "TotalReadoutTime",
    "SliceTiming",
    "MultibandAccelerationFactor",
)


def stem_of(path: str | Path) -> Path:
    """``sub-01_dwi.nii.gz`` -> ``sub-01_dwi`` (same folder)."""
    path = Path(path)
    for suffix in NIFTI_SUFFIXES:
        if path.name.endswith(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return path.with_suffix("")


def find_companion(image: str | Path, suffix: str) -> Path | None:
    """The file next to ``image`` with the same stem and ``suffix`` (``.bval``, ``.bvec``, ``.json``)."""
    candidate = Path(str(stem_of(image)) + suffix)
    return candidate if candidate.is_file() else None


def load_dwi(
    image: str | Path,
    *,
    bval: str | Path | None = None,
    bvec: str | Path | None = None,
    sidecar: str | Path | None = None,
) -> DWIScan:
    """Load a 4D diffusion series.

    Parameters
    ----------
    image
        Path to a 4D NIfTI (``.nii`` or ``.nii.gz``).
    bval, bvec, sidecar
        FSL gradient files and JSON sidecar; found next to the image by stem when not given.

    Returns
    -------
    DWIScan
        Data as float32 ``(X, Y, Z, N)``, affine, b-values (s/mm²), unit b-vectors ``(N, 3)``.

    Raises
    ------
    InputError
        Missing/unreadable files, not NIfTI, not 4D, mismatched gradient counts, all-zero or NaN data.
    """
    import nibabel as nib

    image = Path(image)
    if not image.exists():
        raise InputError(f"image not found: {image}")
    if not image.is_file():
        raise InputError(f"not a file: {image}")
    try:
        img = nib.load(str(image))
    except Exception as exc:  # nibabel raises several types for non-NIfTI input
        raise InputError(f"{image.name}: not a readable NIfTI image ({exc.__class__.__name__})") from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise InputError(f"{image.name}: not a NIfTI image ({type(img).__name__})")
    if len(img.shape) != 4:
        raise InputError(f"{image.name}: a DWI series must be 4D, this image is {len(img.shape)}D {tuple(img.shape)}")
    n = int(img.shape[3])
    if n < 2:
        raise InputError(f"{image.name}: a DWI series needs at least 2 volumes, found {n}")

    bval_path = Path(bval) if bval else find_companion(image, ".bval")
    bvec_path = Path(bvec) if bvec else find_companion(image, ".bvec")
    if bval_path is None:
        raise InputError(f"no .bval file next to {image.name} (give one with --bval)")
    if bvec_path is None:
        raise InputError(f"no .bvec file next to {image.name} (give one with --bvec)")
    bvals, bvecs = read_bvals(bval_path), read_bvecs(bvec_path)
    if bvals.size != n:
        raise InputError(f"{bval_path.name} has {bvals.size} b-values for {n} volumes in {image.name}")
    if bvecs.shape[0] != n:
        raise InputError(f"{bvec_path.name} has {bvecs.shape[0]} columns for {n} volumes in {image.name}")

    try:
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as exc:
        raise InputError(f"{image.name}: image data cannot be read, file truncated? ({exc.__class__.__name__})") from exc
    if not np.all(np.isfinite(data)):
        bad = int(np.count_nonzero(~np.isfinite(data)))
        if bad == data.size:
            raise InputError(f"{image.name}: every voxel is NaN or infinite")
        data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    if not np.any(data):
        raise InputError(f"{image.name}: every voxel is zero")

    sidecar_path = Path(sidecar) if sidecar else find_companion(image, ".json")
    meta = read_sidecar(sidecar_path) if sidecar_path else {}
    return DWIScan(
        data=data,
        affine=np.asarray(img.affine, dtype=np.float64),
        bvals=bvals,
        bvecs=bvecs,
        sidecar=meta,
        path=str(image),
    )


def read_sidecar(path: str | Path) -> dict:
    """Read a JSON sidecar; a broken one is an input error."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InputError(f"sidecar not found: {path}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path.name}: sidecar is not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise InputError(f"{path.name}: sidecar must be a JSON object")
    return doc


def missing_sidecar_fields(sidecar: dict) -> list[str]:
    """Names of the sidecar fields the check would use but which are absent."""
    return [name for name in SIDECAR_FIELDS if name not in sidecar]



def save_dwi(scan: DWIScan, folder: str | Path, *, name: str = "dwi") -> Path:
    """Write ``name.nii.gz``, ``name.bval``, ``name.bvec`` (and ``name.json`` when the scan has
    a sidecar) into ``folder``; returns the image path.

    The gzip stream carries no timestamp, so the same scan always gives the same bytes.
    Callers that need all-or-nothing output write into a :func:`lcid.io.atomic.atomic_dir`.
    """
    from lcid.io.gradient_files import write_gradients

    folder = Path(folder)
    image = folder / f"{name}.nii.gz"
    image.write_bytes(nifti_bytes(np.asarray(scan.data, dtype=np.float32), scan.affine))
    write_gradients(scan.bvals, scan.bvecs, folder / name)
    if scan.sidecar:
        (folder / f"{name}.json").write_text(json.dumps(scan.sidecar, indent=2, sort_keys=True) + "\n")
    return image


def nifti_bytes(data: np.ndarray, affine: np.ndarray) -> bytes:
    """A gzipped NIfTI-1 image with scanner-anchored qform/sform, mm and s units, mtime 0."""
    import gzip

    import nibabel as nib

    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm", "sec")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    return gzip.compress(image.to_bytes(), compresslevel=6, mtime=0)
