"""``lcid demo``: make a phantom (or take a scan), inject known problems, check, compare."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lcid.dwi.vocabulary import PROBLEM_IDS
from lcid.io.atomic import atomic_dir
from lcid.io.nifti import load_dwi, save_dwi
from lcid.workflows.check import CheckResult, check_inputs

#: What the demo injects by default: one volume-level, one slice-level, one geometry problem.
DEFAULT_PROBLEMS: tuple[tuple[str, str], ...] = (
    ("motion", "moderate"),
    ("missing_slices", "severe"),
    ("fov_cutoff", "moderate"),
)


def run_demo(
    *,
    out: Path,
    source: Path | None = None,
    problems: Sequence[tuple[str, str]] = DEFAULT_PROBLEMS,
    seed: int = 7,
    console: Console | None = None,
) -> tuple[dict, CheckResult]:
    """Inject ``problems`` into a phantom (or ``source``), run the check, print the comparison.

    Writes ``out/input/`` (the corrupted scan and ``truth.json``) and ``out/check/``
    (``findings.json`` and ``report.html``). Returns the truth document and the check result.
    """
    from lcid.simulate import inject
    from lcid.simulate.phantom import make_phantom

    console = console or Console(stderr=True)
    with console.status("making the synthetic brain phantom" if source is None else f"loading {source}"):
        scan = make_phantom(seed=seed) if source is None else load_dwi(source)
    with console.status("injecting " + ", ".join(f"{s} {p}" for p, s in problems)):
        corrupted, truth = inject(scan, list(problems), seed=seed)
    with atomic_dir(out / "input") as staging:
        save_dwi(corrupted, staging)
        (staging / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    (result,) = check_inputs([out / "input" / "dwi.nii.gz"], out=out / "check", console=console)
    console.print(comparison_table(truth, result))
    console.print(f"report: [bold]{(out / 'check' / 'report.html').resolve()}[/]")
    return truth, result


def comparison_table(truth: dict, result: CheckResult) -> Table:
    """Injected vs found, one row per problem id."""
    injected = {p["problem"]: p["severity"] for p in truth["problems"]}
    table = Table(title="injected vs found")
    for column in ("problem", "injected", "found", "confidence", "agrees"):
        table.add_column(column)
    for problem in PROBLEM_IDS:
        finding = result.findings[problem]
        expected = injected.get(problem, "none")
        agrees = (expected != "none") == finding.detected
        if problem in ("few_directions", "low_resolution") and problem not in injected:
            agrees, expected = True, "(acquisition)"
        table.add_row(
            problem, expected, finding.severity, f"{finding.confidence:.2f}", "[green]yes[/]" if agrees else "[red]no[/]"
        )
    return table
