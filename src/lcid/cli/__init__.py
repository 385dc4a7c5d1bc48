"""The ``lcid`` command line (typer).

Each command group lives in its own module under ``lcid/cli/`` and adds itself with
``register(app)``; this module only assembles them. User-facing errors
(:class:`lcid.errors.InputError`) print one line on stderr and exit with code 2.
"""

from __future__ import annotations

import sys

import typer

from lcid import __version__
from lcid.errors import InputError

app = typer.Typer(
    name="lcid",
    help="Less Confusion in Diffusion: check diffusion MRI, ask about images, generate MRI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback(invoke_without_command=True)
def _main(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


def fail(message: str) -> None:
    """Print a one-line error on stderr and exit with code 2."""
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(code=2)


from lcid.cli import check as _check  # noqa: E402

_check.register(app)
from lcid.cli import synth as _synth  # noqa: E402

_synth.register(app)
from lcid.cli import simulate as _simulate  # noqa: E402

_simulate.register(app)

from lcid.cli import vlm as _vlm  # noqa: E402

_vlm.register(app)
from lcid.cli import data as _data  # noqa: E402

_data.register(app)

from lcid.cli import serve as _serve  # noqa: E402

_serve.register(app)

from lcid.cli import demo as _demo  # noqa: E402

_demo.register(app)


def main() -> None:
    """Entry point that turns input errors into exit code 2 with one line on stderr."""
    try:
        app()
    except InputError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
