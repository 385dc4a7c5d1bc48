"""The Python API: ``lcid.check(path) -> Findings``."""

from __future__ import annotations

from pathlib import Path

from lcid.dwi.check import run_check
from lcid.dwi.context import Anatomy
from lcid.dwi.finding import Findings
from lcid.io.nifti import load_dwi


def check(
    path: str | Path,
    *,
    bval: str | Path | None = None,
    bvec: str | Path | None = None,
    sidecar: str | Path | None = None,
    anatomy: Anatomy = "auto",
    advice: bool = True,
) -> Findings:
    """Check a diffusion series and return one finding per problem id.

    Parameters
    ----------
    path
        4D NIfTI; ``.bval``/``.bvec``/``.json`` are found next to it when not given.
    anatomy
        ``auto``, ``brain`` or ``phantom``.
    advice
        Attach plain-language explanations and recommendations from the knowledge base.

    Examples
    --------
    >>> findings = lcid.check("sub-01_dwi.nii.gz")  # doctest: +SKIP
    >>> findings["motion"].severity  # doctest: +SKIP
    'none'
    """
    scan = load_dwi(path, bval=bval, bvec=bvec, sidecar=sidecar)
    findings = run_check(scan, anatomy=anatomy)
    if advice:
        from lcid.advice import attach_advice

        findings = attach_advice(findings, scan)
    return findings
