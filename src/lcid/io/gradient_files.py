"""Reading and writing FSL-format ``.bval`` / ``.bvec`` files, with clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lcid.errors import InputError


def read_bvals(path: str | Path) -> np.ndarray:
    """Read an FSL ``.bval`` file: one row (or column) of b-values in s/mm².

    Raises
    ------
    InputError
        Unreadable, empty, non-numeric, negative or NaN values.
    """
    values = _read_numbers(path, "bval")
    if values.ndim == 2 and 1 in values.shape:
        values = values.ravel()
    if values.ndim != 1:
        raise InputError(f"{Path(path).name}: bval file must hold one row of numbers, found shape {values.shape}")
    if np.any(values < 0):
        raise InputError(f"{Path(path).name}: negative b-value {values.min():g}")
    return values.astype(np.float64)


def read_bvecs(path: str | Path) -> np.ndarray:
    """Read an FSL ``.bvec`` file (3 rows; 3 columns accepted) as an ``(N, 3)`` array."""
    values = _read_numbers(path, "bvec")
    if values.ndim == 1 and values.size == 3:
        values = values.reshape(3, 1)
    if values.ndim != 2 or 3 not in values.shape:
        raise InputError(f"{Path(path).name}: bvec file must have 3 rows, found shape {values.shape}")
    rows_first = values.shape[0] == 3  # FSL layout: 3 rows x N columns; N x 3 is accepted too
    return (values.T if rows_first else values).astype(np.float64)


def write_gradients(bvals: np.ndarray, bvecs: np.ndarray, stem: str | Path) -> tuple[Path, Path]:
    """Write ``stem.bval`` and ``stem.bvec`` in FSL layout; returns the two paths."""
    stem = Path(stem)
    bval_path, bvec_path = stem.with_suffix(".bval"), stem.with_suffix(".bvec")
    bval_path.write_text(" ".join(f"{b:g}" for b in bvals) + "\n")
    bvec_path.write_text("\n".join(" ".join(f"{v:.6f}" for v in row) for row in np.asarray(bvecs).T) + "\n")
    return bval_path, bvec_path


def _read_numbers(path: str | Path, kind: str) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{kind} file not found: {path}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path.name}: cannot read {kind} file ({exc.__class__.__name__})") from exc
    rows = [line.replace(",", " ").split() for line in text.splitlines() if line.strip()]
    if not rows:
        raise InputError(f"{path.name}: {kind} file is empty")
    if len({len(r) for r in rows}) != 1:
        raise InputError(f"{path.name}: {kind} rows have different lengths {[len(r) for r in rows]}")
    try:
        values = np.array([[float(v) for v in r] for r in rows])
    except ValueError as exc:
        raise InputError(f"{path.name}: non-numeric value in {kind} file ({exc})") from exc
    if not np.all(np.isfinite(values)):
        raise InputError(f"{path.name}: NaN or infinite value in {kind} file")
    return values[0] if values.shape[0] == 1 else values
