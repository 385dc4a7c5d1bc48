"""The short terminal summary of a check (a rich table)."""

from __future__ import annotations

from rich.table import Table

from lcid.dwi.finding import Findings

#: rich styles of the traffic lights.
STYLES = {"none": "green", "mild": "yellow", "moderate": "dark_orange", "severe": "bold red", "not applicable": "grey50"}


def terminal_summary(findings: Findings) -> Table:
    """One row per problem: traffic light, severity, confidence and where (volumes/slices)."""
    table = Table(title="lcid check", show_lines=False)
    table.add_column("problem")
    table.add_column("result")
    table.add_column("confidence", justify="right")
    table.add_column("where")
    for f in findings.findings:
        state = f.severity if f.applicable else "not applicable"
        style = STYLES[state]
        where = f.where or {}
        located = []
        if where.get("volumes"):
            located.append(f"{len(where['volumes'])} volumes")
        if where.get("slices"):
            located.append(f"{len(where['slices'])} slices")
        table.add_row(
            f.problem,
            f"[{style}]●[/] [{style}]{'ok' if state == 'none' else state}[/]",
            f"{f.confidence:.0%}" if f.applicable else "-",
            ", ".join(located),
        )
    return table
