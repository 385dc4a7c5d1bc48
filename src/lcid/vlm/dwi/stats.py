"""Counts of a DWI data set manifest and a figure of them: look at the data before training."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lcid.dwi.vocabulary import PROBLEM_IDS


def manifest_counts(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Questions per labelled problem (``clean`` for none), severity, plane, scanner and split,
    and (``hidden``) per problem the questions whose picture the geometric rules alone would
    have labelled with it but where its mark stays under the Rose criterion
    (:mod:`lcid.vlm.dwi.conspicuity`; empty for data sets built before that rule).

    >>> manifest_counts([{"labels": [], "severities": {}, "plane": "axial", "scanner": "x", "split": "train"}])["problem"]
    {'clean': 1}
    """
    counts: dict[str, Counter] = {k: Counter() for k in ("problem", "severity", "plane", "scanner", "split", "hidden")}
    for r in rows:
        counts["problem"].update(r["labels"] or ["clean"])
        counts["hidden"].update(r.get("hidden", []))
        counts["severity"].update(r.get("severities", {}).values() or ["none"])
        for key in ("plane", "scanner", "split"):
            counts[key][str(r[key])] += 1
    order = {p: i for i, p in enumerate((*PROBLEM_IDS, "clean"))}
    return {
        key: dict(sorted(c.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))) for key, c in counts.items()
    }


def plot_counts(counts: dict[str, dict[str, int]], path: str | Path) -> Path:
    """Bar charts of :func:`manifest_counts` (problem, severity, plane, scanner) as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ("problem", "severity", "plane", "scanner")
    fig, axes = plt.subplots(1, 4, figsize=(16, 4), gridspec_kw={"width_ratios": [3, 1.2, 1, 1.5]})
    for ax, key in zip(axes, keys, strict=True):
        names = list(counts[key])
        ax.bar(range(len(names)), [counts[key][n] for n in names], color="#4c72b0")
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
        ax.set_title(f"questions per {key}")
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)  # atomic: a reader never sees half a PNG
    return path
