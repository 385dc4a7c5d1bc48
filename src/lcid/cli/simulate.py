"""``lcid simulate`` and ``lcid phantom``: corrupted scans with ground truth, and a synthetic brain."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from lcid.errors import InputError
from lcid.io.scan import DWIScan


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_command)
    app.command("phantom")(phantom_command)


def simulate_command(
    source: str = typer.Argument(..., metavar="INPUT", help="A 4D NIfTI (bval/bvec/json beside it) or the word 'phantom'."),
    problem: list[str] = typer.Option(..., "--problem", "-p", help="Problem id to inject; repeat for several, applied in order."),
    severity: list[str] = typer.Option(
        ["moderate"], "--severity", "-s", help="mild, moderate or severe: once for all problems or once per problem."
    ),
    seed: int = typer.Option(0, help="Seed of every random draw; the same seed gives the same bytes."),
    out: Path = typer.Option(Path("lcid_simulated"), "--out", "-o", help="Output folder."),
) -> None:
    """Inject known problems into a scan; writes dwi.nii.gz, dwi.bval, dwi.bvec, dwi.json and truth.json."""
    from lcid.cli import fail
    from lcid.simulate import inject

    try:
        if len(severity) not in (1, len(problem)):
            raise InputError(f"give --severity once, or once per --problem ({len(problem)}), not {len(severity)} times")
        pairs = list(zip(problem, severity * len(problem) if len(severity) == 1 else severity, strict=True))
        scan = _load_source(source, seed=seed)
        corrupted, truth = inject(scan, pairs, seed=seed)
        _write_outputs(corrupted, out, truth=truth)
    except InputError as exc:
        fail(str(exc))
    names = ", ".join(f"{p} ({s})" for p, s in pairs)
    typer.echo(f"injected {names} into {source}; wrote {out}/dwi.nii.gz and truth.json", err=True)


def phantom_command(
    out: Path = typer.Option(Path("lcid_phantom"), "--out", "-o", help="Output folder."),
    shape: str = typer.Option("64,64,40", help="Matrix size X,Y,Z in voxels."),
    voxel_mm: float = typer.Option(2.0, "--voxel-mm", help="Isotropic voxel edge (mm)."),
    snr: float = typer.Option(30.0, help="b0 SNR in the brain (0 for no noise)."),
    seed: int = typer.Option(0, help="Seed of the noise."),
) -> None:
    """Write a synthetic brain-like DWI series (dwi.*) and its tissue labels (labels.nii.gz)."""
    from lcid.cli import fail
    from lcid.simulate.phantom import phantom_labels

    try:
        size = _parse_shape(shape)
        if not voxel_mm > 0 or snr < 0:
            raise InputError(f"--voxel-mm must be > 0 and --snr >= 0, got {voxel_mm:g} and {snr:g}")
        scan = _phantom(size, voxel_mm=voxel_mm, snr=snr, seed=seed)
        _write_outputs(scan, out, labels=phantom_labels(size))
    except InputError as exc:
        fail(str(exc))
    typer.echo(f"wrote a {'x'.join(map(str, size))} phantom with {scan.n_volumes} volumes to {out}", err=True)


def _parse_shape(text: str) -> tuple[int, int, int]:
    try:
        size = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise InputError(f"--shape must be three integers like 64,64,40, got {text!r}") from None
    if len(size) != 3 or min(size) < 8:
        raise InputError(f"--shape must be three integers >= 8 like 64,64,40, got {text!r}")
    return size  # type: ignore[return-value]


def _phantom(shape: tuple[int, int, int], *, voxel_mm: float = 2.0, snr: float = 30.0, seed: int = 0) -> DWIScan:
    from lcid.simulate.phantom import make_phantom

    return make_phantom(shape=shape, voxel_mm=voxel_mm, snr=snr, seed=seed)


def _load_source(source: str, *, seed: int) -> DWIScan:
    if source == "phantom":
        return _phantom((64, 64, 40), seed=seed)
    from lcid.io.nifti import load_dwi

    return load_dwi(source)


def _write_outputs(scan: DWIScan, out: Path, *, truth: dict | None = None, labels: np.ndarray | None = None) -> None:
    """Write the scan (and truth/labels) into ``out`` atomically."""
    from lcid.io.atomic import atomic_dir
    from lcid.io.nifti import nifti_bytes, save_dwi

    with atomic_dir(out) as tmp:
        save_dwi(scan, tmp, name="dwi")
        if labels is not None:
            (tmp / "labels.nii.gz").write_bytes(nifti_bytes(labels.astype(np.int16), scan.affine))
        if truth is not None:
            (tmp / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")

