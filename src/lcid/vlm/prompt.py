"""The text the language model reads before it answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

DEFAULT_QUESTION = "What is wrong with this image?"


def build_prompt(
    question: str,
    *,
    acq: str | None = None,
    findings: Mapping[str, object] | None = None,
    history: Sequence[tuple[str, str]] | None = None,
) -> str:
    """Join acquisition text, check findings, earlier turns and the question.

    >>> build_prompt("is this a ct?", acq="b=1000 s/mm2, 16 directions")
    'acquisition: b=1000 s/mm2, 16 directions question: is this a ct? answer:'
    """
    parts = []
    if acq:
        parts.append(f"acquisition: {' '.join(acq.split())}")
    if findings:
        detected = _detected(findings)
        parts.append("findings: " + (", ".join(detected) if detected else "none"))
    for past_question, past_answer in history or ():
        parts.append(f"question: {past_question.strip()} answer: {past_answer.strip()}")
    parts.append(f"question: {' '.join(question.split())} answer:")
    return " ".join(parts)


def _detected(findings: Mapping[str, object]) -> list[str]:
    """Problem ids marked detected in a findings.json dict (or a ``{problem: severity}`` map)."""
    items = findings.get("findings") if "findings" in findings else None
    if isinstance(items, list):
        return [f"{f['problem']} ({f.get('severity', '')})" for f in items if isinstance(f, dict) and f.get("detected")]
    return [f"{k} ({v})" for k, v in findings.items() if v not in (None, False, "none")]
