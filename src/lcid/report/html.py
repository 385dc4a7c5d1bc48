"""The self-contained, offline HTML report of one check.

One page: a traffic-light summary, the input description, overview figures, then one
section per problem (explanation, evidence figures, advice with commands and
references) and the warnings. Styles are inline and figures are base64 PNG: the page
loads nothing from anywhere. Patient identifiers are never shown: only whitelisted
geometry and acquisition fields are printed, never the sidecar as a whole.
"""

from __future__ import annotations

import base64
import math
from html import escape
from pathlib import Path
from typing import Any

from lcid.advice import ACQUISITION_PREFIX, attach_advice
from lcid.advice.knowledge import load_knowledge
from lcid.advice.template import format_indices, format_number
from lcid.dwi.context import CheckContext
from lcid.dwi.finding import Finding, Findings
from lcid.dwi.vocabulary import severity_rank
from lcid.io.scan import DWIScan
from lcid.report.evidence import Evidence, overview_figures, problem_figures
from lcid.report.theme import CSS, LABELS, LIGHTS

#: Acquisition fields of the sidecar that may be shown (none identifies a person).
SAFE_SIDECAR_FIELDS = (
    "Manufacturer",
    "ManufacturersModelName",
    "MagneticFieldStrength",
    "EchoTime",
    "RepetitionTime",
    "TotalReadoutTime",
    "MultibandAccelerationFactor",
    "ParallelReductionFactorInPlane",
    "PartialFourier",
)


def render_report(
    findings: Findings,
    scan: DWIScan,
    *,
    context: CheckContext | None = None,
    title: str = "lcid check",
) -> str:
    """The report as one HTML document (UTF-8 text).

    Parameters
    ----------
    findings
        The check's findings; advice is attached here when the findings carry none.
    scan
        The checked series (for the figures and the acquisition description).
    context
        The check's context (mask, mean b0); figures that need it are left out without it.
    title
        Page title and heading.
    """
    if not any(f.explanation for f in findings.findings):
        findings = attach_advice(findings, scan)
    kb = load_knowledge()
    titles = {p: a.title for p, a in kb.items()}
    ordered = sorted(findings.findings, key=lambda f: (-severity_rank(f.severity) if f.applicable else 1, -f.confidence))
    body = [
        f"<h1>{escape(title)}</h1>",
        (
            '<p class="sub">Diffusion MRI quality check by lcid. This page was made on your computer; '
            "nothing was sent anywhere.</p>"
        ),
        _summary(findings, titles),
        _legend(),
        _warnings(findings.warnings),
        "<h2>The scan</h2>",
        _input_table(findings.input, scan),
        _figures(overview_figures(scan, context)),
    ]
    for finding in ordered:
        body.append(_section(finding, titles.get(finding.problem, finding.problem), scan, context))
    body.append(f"<footer>lcid {escape(findings.lcid_version or _version())}. Severity uses one literature-based scale "
                "per problem; confidence is how sure the check is that the problem is present.</footer>")  # fmt: skip
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        + "\n".join(part for part in body if part)
        + "\n</body>\n</html>\n"
    )


def _version() -> str:
    from lcid import __version__

    return __version__


def _state(finding: Finding) -> str:
    return finding.severity if finding.applicable else "not applicable"


def _light(state: str) -> str:
    return f'<span class="light" style="background:{LIGHTS[state]}" title="{escape(state)}"></span>'


def _summary(findings: Findings, titles: dict[str, str]) -> str:
    rows = []
    for f in findings.findings:
        state = _state(f)
        confidence = f"{f.confidence:.0%}" if f.applicable else "-"
        first = first_sentence(f.explanation)
        rows.append(
            f'<tr><td><a href="#{escape(f.problem)}">{escape(titles.get(f.problem, f.problem))}</a></td>'
            f'<td class="sev">{_light(state)}{escape(LABELS[state])}</td><td>{confidence}</td>'
            f"<td>{escape(first)}</td></tr>"
        )
    detected = len([f for f in findings.findings if f.applicable and f.detected])
    head = f"<p><b>{detected}</b> of {len(findings.findings)} problems found.</p>"
    return (
        '<h2>Summary</h2>\n' + head + '<table class="summary"><thead><tr><th>Problem</th><th>Result</th>'
        "<th>Confidence</th><th>In short</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _legend() -> str:
    items = "".join(f"<span>{_light(s)}{escape(LABELS[s])}</span>" for s in LIGHTS)
    return f'<p class="legend">{items}</p>'


def _warnings(warnings: tuple[str, ...]) -> str:
    if not warnings:
        return ""
    items = "".join(f"<li>{escape(w)}</li>" for w in warnings)
    return f'<div class="warnings"><b>Warnings</b><ul>{items}</ul></div>'


def _input_table(doc: dict[str, Any], scan: DWIScan) -> str:
    rows: list[tuple[str, str]] = []
    path = doc.get("path") or scan.path
    if path:
        rows.append(("file", Path(str(path)).name))
    shape = doc.get("shape") or list(scan.shape)
    rows.append(("shape (x, y, z, volumes)", " x ".join(str(int(s)) for s in shape)))
    voxel = doc.get("voxel_size_mm") or scan.voxel_size_mm
    rows.append(("voxel size", " x ".join(f"{float(v):.3g}" for v in voxel) + " mm"))
    shells = doc.get("shells")
    if isinstance(shells, list) and shells:
        text = []
        for s in shells:
            b = int(round(float(s.get("bval", 0))))
            extra = f", {s['unique_directions']} unique directions" if "unique_directions" in s else ""
            text.append(f"b={b} s/mm²: {int(s.get('count', 0))} volumes{extra}")
        rows.append(("shells", "; ".join(text)))
    pe = scan.sidecar.get("PhaseEncodingDirection") or doc.get("phase_encoding_axis")
    rows.append(("phase encoding", str(pe) if pe else "unknown (not in the sidecar)"))
    rows.append(("orientation (voxel axes)", str(doc.get("orientation") or scan.orientation)))
    if doc.get("object"):
        rows.append(("object", str(doc["object"])))
    md = doc.get("mean_diffusivity_mm2_s")
    if isinstance(md, (int, float)) and math.isfinite(md):
        rows.append(("mean diffusivity", f"{md * 1e3:.2f} x 10⁻³ mm²/s"))
    if doc.get("reverse_pe_pair"):
        partner = doc.get("reverse_pe_partner")
        rows.append(("reverse phase-encoding pair", f"yes{f' (with {partner})' if partner else ''}"))
    for key in SAFE_SIDECAR_FIELDS:
        value = scan.sidecar.get(key)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value):
            rows.append((key, format_number(value)))
    cells = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="input">{cells}</table>'


def _figures(items: list[Evidence]) -> str:
    out = []
    for item in items:
        data = base64.b64encode(item.png).decode("ascii")
        out.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{escape(item.caption)}">'
            f"<figcaption>{escape(item.caption)}</figcaption></figure>"
        )
    return "\n".join(out)


def _section(finding: Finding, title: str, scan: DWIScan, context: CheckContext | None) -> str:
    state = _state(finding)
    parts = [
        f'<h2 id="{escape(finding.problem)}">{_light(state)}{escape(title)}: {escape(LABELS[state])}'
        + (f" <small>(confidence {finding.confidence:.0%})</small>" if finding.applicable else "")
        + "</h2>",
        f'<p class="explanation">{escape(finding.explanation)}</p>',
    ]
    where = finding.where or {}
    located = []
    for key, label in (("volumes", "volumes"), ("slices", "slices")):
        if where.get(key):
            located.append(f"{label}: {format_indices(where[key], limit=20)}")
    if where.get("pairs"):
        located.append(f"{len(where['pairs'])} volume-slice pairs")
    if located:
        parts.append(f"<p><b>Where</b> (0-based indices): {escape('; '.join(located))}</p>")
    metrics = [(k, v) for k, v in (finding.metrics or {}).items() if not isinstance(v, dict)]
    if metrics:
        rows = "".join(f"<tr><td>{escape(str(k))}</td><td>{escape(format_number(v))}</td></tr>" for k, v in metrics)
        parts.append(f'<details><summary>Measurements</summary><table class="metrics">{rows}</table></details>')
    parts.append(_figures(problem_figures(finding, scan, context)))
    parts.append(_advice(finding))
    return "\n".join(p for p in parts if p)


def _advice(finding: Finding) -> str:
    if not finding.recommendations:
        return ""
    groups = {"What to do with this scan": [], "What to change next time": []}
    for r in finding.recommendations:
        acquisition = r.action.startswith(ACQUISITION_PREFIX)
        action = r.action[len(ACQUISITION_PREFIX):] if acquisition else r.action
        item = f"<li>{escape(action)}"
        if r.command:
            item += f"<pre><code>{escape(r.command)}</code></pre>"
        if r.reference:
            item += f"<cite>{escape(r.reference)}</cite>"
        groups["What to change next time" if acquisition else "What to do with this scan"].append(item + "</li>")
    return "".join(
        f'<h3>{escape(name)}</h3><ul class="advice">{"".join(items)}</ul>' for name, items in groups.items() if items
    )


def first_sentence(text: str) -> str:
    """The first sentence of ``text``, not fooled by abbreviations such as "e.g." or "i.e.".

    >>> first_sentence("Slices are dark (e.g. 3 and 4). Replace them.")
    'Slices are dark (e.g. 3 and 4).'
    """
    import re

    match = re.search(r"(?<!\be\.g)(?<!\bi\.e)\.\s+(?=[A-Z])", text)
    return text[: match.start() + 1] if match else text
