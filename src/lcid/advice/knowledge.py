"""The recommendations knowledge base: load and validate ``knowledge.yaml``.

The YAML file is data (texts, commands, references); this module only reads it into
frozen dataclasses and checks that every problem id and severity is covered.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from lcid.dwi.vocabulary import PROBLEM_IDS, SEVERITIES
from lcid.errors import InputError

RemedyKind = Literal["processing", "acquisition"]
#: Conditions a remedy may depend on (computed per scan by :mod:`lcid.advice.fields`).
CONDITIONS: tuple[str, ...] = (
    "reverse_pe_pair",
    "no_reverse_pe_pair",
    "pe_known",
    "pe_unknown",
    "multi_shell",
    "single_shell",
    "has_slice_timing",
    "brain",
    "phantom",
)
_DEFAULT_SEVERITIES = ("mild", "moderate", "severe")


@dataclass(frozen=True)
class Remedy:
    """One remedy template: ``action``/``command`` are format templates, ``reference`` is literal."""

    kind: RemedyKind
    action: str
    command: str = ""
    reference: str = ""
    severities: tuple[str, ...] = _DEFAULT_SEVERITIES
    when: str | None = None


@dataclass(frozen=True)
class ProblemAdvice:
    """Everything the knowledge base says about one problem id."""

    problem: str
    title: str
    explanation: dict[str, str]
    not_applicable: str
    remedies: tuple[Remedy, ...]

    def remedies_for(self, severity: str, conditions: dict[str, bool]) -> tuple[Remedy, ...]:
        """Remedies offered at ``severity`` whose condition holds, processing before acquisition."""
        chosen = [
            r
            for r in self.remedies
            if severity in r.severities and (r.when is None or conditions.get(r.when, False))
        ]
        return tuple(sorted(chosen, key=lambda r: r.kind != "processing"))


def load_knowledge(path: str | Path | None = None) -> dict[str, ProblemAdvice]:
    """Read and validate a knowledge base (default: the packaged ``knowledge.yaml``).

    Returns
    -------
    dict
        Problem id -> :class:`ProblemAdvice`, for every id of the vocabulary.

    Raises
    ------
    InputError
        When the file is missing, not YAML, or lacks a problem, a severity or a field.
    """
    if path is None:
        return _packaged()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"knowledge base not found: {path}")
    return _parse(path.read_text(encoding="utf-8"), source=str(path))


@lru_cache(maxsize=1)
def _packaged() -> dict[str, ProblemAdvice]:
    text = resources.files("lcid.advice").joinpath("knowledge.yaml").read_text(encoding="utf-8")
    return _parse(text, source="lcid/advice/knowledge.yaml")


def _parse(text: str, *, source: str) -> dict[str, ProblemAdvice]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: not valid YAML ({exc.__class__.__name__})") from exc
    problems = (doc or {}).get("problems")
    if not isinstance(problems, dict):
        raise InputError(f"{source}: no 'problems' mapping")
    missing = [p for p in PROBLEM_IDS if p not in problems]
    if missing:
        raise InputError(f"{source}: no advice for {', '.join(missing)}")
    return {p: _problem(p, problems[p], source) for p in PROBLEM_IDS}


def _problem(problem: str, entry: Any, source: str) -> ProblemAdvice:
    where = f"{source}: {problem}"
    if not isinstance(entry, dict):
        raise InputError(f"{where}: must be a mapping")
    explanation = entry.get("explanation") or {}
    lacking = [s for s in SEVERITIES if not str(explanation.get(s, "")).strip()]
    if lacking:
        raise InputError(f"{where}: no explanation for severity {', '.join(lacking)}")
    for key in ("title", "not_applicable"):
        if not str(entry.get(key, "")).strip():
            raise InputError(f"{where}: missing {key}")
    remedies = tuple(_remedy(r, f"{where} remedy {i}") for i, r in enumerate(entry.get("remedies") or []))
    return ProblemAdvice(
        problem=problem,
        title=str(entry["title"]),
        explanation={s: str(explanation[s]).strip() for s in SEVERITIES},
        not_applicable=str(entry["not_applicable"]).strip(),
        remedies=remedies,
    )


def _remedy(entry: Any, where: str) -> Remedy:
    if not isinstance(entry, dict) or not str(entry.get("action", "")).strip():
        raise InputError(f"{where}: needs an action")
    kind = entry.get("kind", "processing")
    if kind not in ("processing", "acquisition"):
        raise InputError(f"{where}: kind must be processing or acquisition, not {kind!r}")
    severities = tuple(entry.get("severities") or _DEFAULT_SEVERITIES)
    unknown = [s for s in severities if s not in SEVERITIES]
    if unknown:
        raise InputError(f"{where}: unknown severities {unknown}")
    when = entry.get("when")
    if when is not None and when not in CONDITIONS:
        raise InputError(f"{where}: unknown condition {when!r} (one of {', '.join(CONDITIONS)})")
    return Remedy(
        kind=kind,
        action=str(entry["action"]).strip(),
        command=str(entry.get("command") or "").strip(),
        reference=str(entry.get("reference") or "").strip(),
        severities=severities,
        when=when,
    )
