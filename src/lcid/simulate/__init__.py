"""Artifact simulator with ground truth, and a synthetic DWI phantom.

>>> from lcid.simulate import inject, make_phantom  # doctest: +SKIP
>>> scan, truth = inject(make_phantom(), [("motion", "moderate")], seed=7)  # doctest: +SKIP
"""

from __future__ import annotations

from lcid.simulate.inject import inject
from lcid.simulate.phantom import make_phantom

__all__ = ["inject", "make_phantom"]
