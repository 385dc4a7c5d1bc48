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


def use_threads(threads: int) -> None:
    """Let torch use ``threads`` CPU threads (at least one); torch is imported only here, on demand."""
    import torch

    torch.set_num_threads(max(1, threads))


def command_group(parent: typer.Typer, name: str, help_text: str) -> typer.Typer:
    """The sub-command group ``name`` (``train``, ``eval``, ...) of ``parent``, made on first use.

    Several modules add commands to the same group (``lcid train vqa``, ``lcid train ldm``).
    """
    for info in parent.registered_groups:
        if info.name == name and info.typer_instance is not None:
            return info.typer_instance
    group = typer.Typer(help=help_text, no_args_is_help=True)
    parent.add_typer(group, name=name)
    return group


from lcid.cli import check, data, demo, serve, simulate, synth, vlm

for _module in (check, demo, simulate, vlm, data, synth, serve):
    _module.register(app)


def main() -> None:
    """Entry point that turns input errors into exit code 2 with one line on stderr."""
    try:
        app()
    except InputError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
