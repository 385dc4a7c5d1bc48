"""Findings of the quality check: the `findings.json` contract of DESIGN.md §2."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from lcid.dwi.vocabulary import PROBLEM_IDS, SEVERITIES


@dataclass(frozen=True)
class Recommendation:
    """One remedy: what to do, optionally a command to run, and a literature reference."""

    action: str
    command: str = ""
    reference: str = ""


@dataclass(frozen=True)
class Finding:
    """What one detector concluded about one problem.

    Parameters
    ----------
    problem
        A problem id from :data:`lcid.dwi.vocabulary.PROBLEM_IDS`.
    severity
        ``none``, ``mild``, ``moderate`` or ``severe``; ``detected`` follows from it.
    confidence
        Probability-like score in [0, 1] that the problem is present (not the severity).
    metrics
        Named measurements (units in the name, e.g. ``max_fd_mm``).
    where
        ``volumes`` and ``slices`` (0-based indices into the input), and ``pairs``
        (``[volume, slice]``) for slice-level problems.
    explanation, recommendations
        Filled by :mod:`lcid.advice` from the knowledge base; empty from a detector.
    applicable
        False when the check does not apply to this scan (e.g. a brain-only check on a phantom).
    evidence
        Arrays for the report's figures (e.g. per-volume displacement, a volume-by-slice
        score map); kept in memory only, not written to findings.json.
    """

    problem: str
    severity: str = "none"
    confidence: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    where: dict[str, list] = field(default_factory=lambda: {"volumes": [], "slices": []})
    explanation: str = ""
    recommendations: tuple[Recommendation, ...] = ()
    applicable: bool = True
    evidence: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.problem not in PROBLEM_IDS:
            raise ValueError(f"unknown problem id {self.problem!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")
        if not 0.0 <= self.confidence <= 1.0 or math.isnan(self.confidence):
            raise ValueError(f"confidence {self.confidence} outside [0, 1]")

    @property
    def detected(self) -> bool:
        """True exactly when severity is not ``none``."""
        return self.severity != "none"

    def with_advice(self, explanation: str, recommendations: tuple[Recommendation, ...]) -> Finding:
        """Copy with the plain-language explanation and remedies attached."""
        return replace(self, explanation=explanation, recommendations=tuple(recommendations))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict in the order of the contract."""
        where = {"volumes": [], "slices": [], **{k: _plain(v) for k, v in self.where.items()}}
        return {
            "problem": self.problem,
            "detected": self.detected,
            "severity": self.severity,
            "confidence": round(float(self.confidence), 4),
            "applicable": self.applicable,
            "metrics": {k: _plain(v) for k, v in self.metrics.items()},
            "where": where,
            "explanation": self.explanation,
            "recommendations": [asdict(r) for r in self.recommendations],
        }


@dataclass(frozen=True)
class Findings:
    """The result of one check: a description of the input and one finding per problem id."""

    input: dict[str, Any]
    findings: tuple[Finding, ...]
    warnings: tuple[str, ...] = ()
    lcid_version: str = ""

    def __getitem__(self, problem: str) -> Finding:
        for finding in self.findings:
            if finding.problem == problem:
                return finding
        raise KeyError(problem)

    @property
    def detected(self) -> tuple[Finding, ...]:
        """The findings whose severity is not ``none``."""
        return tuple(f for f in self.findings if f.detected)

    def to_dict(self) -> dict[str, Any]:
        """The `findings.json` document."""
        from lcid import __version__

        return {
            "lcid_version": self.lcid_version or __version__,
            "input": {k: _plain(v) for k, v in self.input.items()},
            "warnings": list(self.warnings),
            "findings": [f.to_dict() for f in self.findings],
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Findings:
        """Read back a `findings.json` document."""
        findings = tuple(
            Finding(
                problem=f["problem"],
                severity=f["severity"],
                confidence=float(f["confidence"]),
                metrics=dict(f.get("metrics", {})),
                where=dict(f.get("where", {})),
                explanation=f.get("explanation", ""),
                recommendations=tuple(Recommendation(**r) for r in f.get("recommendations", [])),
                applicable=bool(f.get("applicable", True)),
            )
            for f in doc["findings"]
        )
        return cls(
            input=dict(doc.get("input", {})),
            findings=findings,
            warnings=tuple(doc.get("warnings", [])),
            lcid_version=doc.get("lcid_version", ""),
        )


def _plain(value: Any) -> Any:
    """Convert numpy scalars/arrays (and nested containers) to JSON-ready Python values."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    return value
