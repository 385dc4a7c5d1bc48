"""One module per problem of the vocabulary, each with ``sample`` (random) and ``apply`` (deterministic).

``sample(rng, scan, severity) -> dict`` draws JSON-serialisable parameters, including the
realised magnitude on the shared severity scale (:mod:`lcid.dwi.severity`);
``apply(scan, params) -> (scan, where)`` corrupts the scan and says where (0-based
``volumes``, ``slices``, ``pairs`` of ``[volume, slice]``). A module that can change the slice
grid after other problems were applied (``fov_cutoff``, see
:data:`lcid.simulate.inject.ACQUISITION_ORDER`) also exposes ``index_maps(scan, params)`` so
earlier ground truth can follow.
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


#: The parameter holding each problem's realised magnitude on the shared severity scale.
MAGNITUDE_KEYS: dict[str, tuple[str, ...]] = {
    "motion": ("max_fd_mm", "shift_voxels"),
    "eddy_current": ("max_displacement_voxels",),
    "missing_slices": ("fraction_lost",),
    "fov_cutoff": ("cut_mm",),
    "low_resolution": ("largest_voxel_mm",),
    "few_directions": ("deficit",),
    "noise": ("inverse_snr",),
    "gibbs_ringing": ("ringing_amplitude",),
    "ghosting": ("ghost_to_signal",),
    "spikes": ("slice_fraction",),
    "gradient_table": ("fraction",),
}


def realised_magnitude(problem: str, parameters: dict) -> float:
    """The realised magnitude recorded in an injected problem's ``parameters`` (truth.json)."""
    for key in MAGNITUDE_KEYS[problem]:
        if key in parameters:
            return float(parameters[key])
    raise KeyError(f"no magnitude in the parameters of {problem}")
