"""``lcid demo``: the README's main job."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)


def demo_command(
    out: Path = typer.Option(Path("demo_out"), "--out", "-o", help="Output folder."),
    source: Path | None = typer.Option(None, "--input", help="Use this 4D NIfTI instead of the phantom."),
    seed: int = typer.Option(7, help="Seed of the phantom and of the injected problems."),
) -> None:
    """Make a phantom, inject known problems, check it and compare found with injected."""
    from lcid.cli import fail
    from lcid.errors import InputError
    from lcid.workflows.demo import run_demo

    try:
        run_demo(out=out, source=source, seed=seed)
    except InputError as exc:
        fail(str(exc))
