"""``lcid check``: run the quality check and write findings.json and report.html."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from lcid.errors import InputError


def register(app: typer.Typer) -> None:
    app.command("check")(check_command)


def check_command(
    inputs: list[Path] = typer.Argument(..., help="4D NIfTI file(s), a DICOM folder or a BIDS dataset."),
    out: Path = typer.Option(Path("lcid_check"), "--out", "-o", help="Output folder."),
    bval: Path | None = typer.Option(None, help="FSL .bval file (default: next to the image)."),
    bvec: Path | None = typer.Option(None, help="FSL .bvec file (default: next to the image)."),
    sidecar: Path | None = typer.Option(None, help="BIDS/dcm2niix JSON sidecar."),
    anatomy: str = typer.Option("auto", help="auto, brain or phantom."),
    concat: bool = typer.Option(False, "--concat", help="Join the given runs into one series (same grid)."),
    json_out: bool = typer.Option(False, "--json", help="Print findings.json to stdout."),
) -> None:
    """Find what is wrong with a diffusion scan, explain it and say what to do."""
    from lcid.cli import fail
    from lcid.workflows.check import check_inputs

    console = Console(stderr=True, quiet=json_out)
    if anatomy not in ("auto", "brain", "phantom"):
        fail(f"--anatomy must be auto, brain or phantom, not {anatomy!r}")
    try:
        results = check_inputs(
            inputs, out=out, bval=bval, bvec=bvec, sidecar=sidecar, anatomy=anatomy, concat=concat, console=console
        )
    except InputError as exc:
        fail(str(exc))
    if json_out:
        docs = [r.findings.to_dict() for r in results]
        typer.echo(json.dumps(docs[0] if len(docs) == 1 else docs, indent=2))
