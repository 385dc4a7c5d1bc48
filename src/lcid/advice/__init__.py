"""The recommendations knowledge base: explanations, remedies and references for each problem."""

from __future__ import annotations

from lcid.advice.attach import ACQUISITION_PREFIX, attach_advice
from lcid.advice.knowledge import ProblemAdvice, Remedy, load_knowledge

__all__ = ["ACQUISITION_PREFIX", "ProblemAdvice", "Remedy", "attach_advice", "load_knowledge"]
