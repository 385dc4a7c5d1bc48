"""One module per problem of the vocabulary, each with ``sample`` (random) and ``apply`` (deterministic).

``sample(rng, scan, severity) -> dict`` draws JSON-serialisable parameters, including the
realised magnitude on the shared severity scale (:mod:`lcid.dwi.severity`);
``apply(scan, params) -> (scan, where)`` corrupts the scan and says where (0-based
``volumes``, ``slices``, ``pairs`` of ``[volume, slice]``). Modules that change the volume
or slice grid also expose ``index_maps(scan, params)`` so earlier ground truth can follow.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from lcid.dwi.vocabulary import PROBLEM_IDS
from lcid.errors import InputError


def artifact(problem: str) -> ModuleType:
    """The simulator module of ``problem``.

    Raises
    ------
    InputError
        When ``problem`` is not in the vocabulary.
    """
    if problem not in PROBLEM_IDS:
        raise InputError(f"unknown problem {problem!r}: choose one of {', '.join(PROBLEM_IDS)}")
    return importlib.import_module(f"lcid.simulate.artifacts.{problem}")
