"""Attach plain-language explanations and remedies from the knowledge base to findings."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from lcid.advice.fields import conditions, finding_fields, scan_fields
from lcid.advice.knowledge import ProblemAdvice, load_knowledge
from lcid.advice.template import render
from lcid.dwi.finding import Finding, Findings, Recommendation
from lcid.io.scan import DWIScan

#: Prefix that marks advice for the next acquisition (processing advice has none).
ACQUISITION_PREFIX = "Next acquisition: "


def attach_advice(findings: Findings, scan: DWIScan | None, *, knowledge: dict[str, ProblemAdvice] | None = None) -> Findings:
    """Copy of ``findings`` with an explanation and recommendations on every finding.

    Parameters
    ----------
    findings
        The check's result (detectors leave explanation and recommendations empty).
    scan
        The checked series: its sidecar (phase encoding, readout time, slice timing), shells
        and file name make the advice specific. May be None (advice then uses ``findings.input``).
    knowledge
        A loaded knowledge base (default: the packaged ``knowledge.yaml``).

    Returns
    -------
    Findings
        Same findings and order. Severity ``none``: a reassuring sentence and at most an
        acquisition tip. ``applicable=False``: why the check does not apply, no remedies.
    """
    kb = knowledge if knowledge is not None else load_knowledge()
    input_doc = dict(findings.input or {})
    shared = scan_fields(scan, input_doc)
    truth = conditions(scan, input_doc, shared)
    advised = tuple(_advise(f, kb[f.problem], shared, truth, input_doc) for f in findings.findings)
    return replace(findings, findings=advised)


def _advise(
    finding: Finding,
    advice: ProblemAdvice,
    shared: dict[str, Any],
    truth: dict[str, bool],
    input_doc: dict[str, Any],
) -> Finding:
    n_volumes = shared.get("n_volumes")
    local = finding_fields(finding, input_doc, n_volumes=n_volumes if isinstance(n_volumes, int) else None)
    fields = {**shared, **local, "topic": advice.title[:1].lower() + advice.title[1:]}
    if not finding.applicable:
        return finding.with_advice(render(advice.not_applicable, fields), ())
    explanation = render(advice.explanation[finding.severity], fields)
    recommendations = []
    for remedy in advice.remedies_for(finding.severity, truth):
        action = render(remedy.action, fields)
        if remedy.kind == "acquisition":
            action = ACQUISITION_PREFIX + action
        recommendations.append(Recommendation(action=action, command=render(remedy.command, fields), reference=remedy.reference))
    return finding.with_advice(explanation, tuple(recommendations))
