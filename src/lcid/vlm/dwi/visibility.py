"""Which injected problems one rendered slice (plus the acquisition text) can honestly show.

A single 2D slice of one volume is all the DWI model sees. A problem is labelled for a slice
image only when it leaves a mark in that very picture:

=================  ==========================================================================
problem            visible in the slice image of volume ``v``, plane normal to voxel axis ``a``
=================  ==========================================================================
noise              always (every volume is noisier)
gibbs_ringing      always (in-plane k-space truncation rings at every edge)
ghosting           when the plane contains the phase-encoding axis (the ghost is shifted along it)
low_resolution     isotropic loss: always; thick slices only: when the plane contains the slice axis
fov_cutoff         when the plane contains the cut axis (superior-inferior): coronal, sagittal
missing_slices     volume ``v`` has a dark slice ``s``: in an orthogonal plane (a dark band crosses
                   it); in the acquisition plane at ``s`` only when the slice lost at least 80 %
                   of its signal, because the model scales each picture's contrast on its own
                   (:func:`lcid.vlm.image.to_model_input`), which brightens a half-dark slice
                   back to normal and leaves only its lower signal-to-noise ratio
spikes             as missing_slices, for the spiked (volume, slice) pairs
motion             interleaved slice shifts of volume ``v``, in a plane orthogonal to the slices
                   (alternate slices zig-zag); motion between volumes never shows in one volume
eddy_current       never: a shear or scaling along phase encoding needs another volume to compare
few_directions     never in the image; from the acquisition text when it is given and its best
                   shell has fewer than 30 unique directions (Jones 2004; the simulator's rule)
gradient_table     never in the image; from the acquisition text when it reports zero or
                   non-unit b-vectors (flipped or permuted axes cannot be seen at all)
=================  ==========================================================================

These geometric rules are necessary, not sufficient. For ``ghosting``, ``spikes`` and
``gibbs_ringing`` a picture is labelled only when, besides, their mark stands out from the
picture's noise: the builder measures the detectability ``d'`` of the artifact's difference
image in that rendered view and the label needs ``d' >= 5`` (Rose's criterion; see
:mod:`lcid.vlm.dwi.conspicuity`). Before this rule the labels claimed faint ghosts under the
noise floor of a diffusion-weighted volume and single stripes no reader could see.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lcid.simulate.artifacts.few_directions import ENOUGH_DIRECTIONS
from lcid.vlm.dwi.conspicuity import CONSPICUITY_PROBLEMS, ROSE_K

#: Signal lost (fraction) from which a dropout shows in a picture of that very slice.
SLICE_PLANE_DROPOUT = 0.8
#: Problems a single slice image can show (the evaluation's macro F1 is over these).
IMAGE_VISIBLE: tuple[str, ...] = (
    "noise", "gibbs_ringing", "ghosting", "low_resolution", "fov_cutoff", "missing_slices", "spikes", "motion",
)
#: Problems only the acquisition text can reveal.
TEXT_VISIBLE: tuple[str, ...] = ("few_directions", "gradient_table")
#: Problems neither a slice nor the acquisition text shows.
INVISIBLE: tuple[str, ...] = ("eddy_current",)


@dataclass(frozen=True)
class SliceView:
    """Which picture was taken of the (corrupted) scan.

    Attributes
    ----------
    volume
        Volume index of the picture.
    axis
        Voxel axis normal to the picture's plane.
    index
        Slice index along ``axis``.
    slice_axis
        Voxel axis of the acquisition's slices.
    pe_axis
        Voxel axis of phase encoding (``None`` when unknown).
    detectability
        ``{problem: d'}`` of the injected artifacts in this rendered picture
        (:func:`lcid.vlm.dwi.conspicuity.view_detectability`); ``None`` when not measured,
        and then only the geometric rules decide (the labels of data sets built before).
    """

    volume: int
    axis: int
    index: int
    slice_axis: int
    pe_axis: int | None
    detectability: Mapping[str, float] | None = None


def visible_in_image(entry: Mapping[str, Any], view: SliceView) -> bool:
    """Whether the truth ``entry`` (``{"problem", "parameters", "where"}``) shows in ``view``:
    the geometric rule and, for :data:`CONSPICUITY_PROBLEMS` with a measured ``view``, the
    Rose criterion ``d' >= ROSE_K``."""
    if not geometrically_visible(entry, view):
        return False
    problem = entry["problem"]
    if problem in CONSPICUITY_PROBLEMS and view.detectability is not None:
        return float(view.detectability.get(problem, 0.0)) >= ROSE_K
    return True


def geometrically_visible(entry: Mapping[str, Any], view: SliceView) -> bool:
    """The geometric rule of the module docstring's table alone (plane, volume, slice)."""
    problem = entry["problem"]
    params, where = entry.get("parameters", {}), entry.get("where", {})
    if problem in ("noise", "gibbs_ringing"):
        return True
    if problem == "ghosting":
        return int(params.get("axis", -1)) != view.axis
    if problem == "low_resolution":
        return params.get("mode") == "isotropic" or view.axis != view.slice_axis
    if problem == "fov_cutoff":
        return int(params.get("axis", where.get("axis", -1))) != view.axis
    if problem == "missing_slices":
        lost = {int(e["volume"]): float(e["fraction_lost"]) for e in params.get("events", [])}
        pairs = [p for p in where.get("pairs", [])
                 if view.axis != view.slice_axis or lost.get(int(p[0]), 0.0) >= SLICE_PLANE_DROPOUT]
        return _pair_visible(pairs, view)
    if problem == "spikes":
        return _pair_visible(where.get("pairs", []), view)
    if problem == "motion":
        if params.get("mode") != "interleaved" or view.volume not in where.get("volumes", []):
            return False
        return view.axis != view.slice_axis
    return False


def _pair_visible(pairs: list[list[int]], view: SliceView) -> bool:
    for volume, index in pairs:
        if volume != view.volume:
            continue
        if view.axis != view.slice_axis or index == view.index:
            return True
    return False


def visible_labels(
    truth: Mapping[str, Any], view: SliceView, *, acq_facts: Mapping[str, Any] | None
) -> tuple[str, ...]:
    """Problem ids to label a picture with: image-visible ones, plus text-visible ones when the
    acquisition text (``acq_facts``, ``None`` when absent) states the evidence."""
    labels = set()
    for entry in truth.get("problems", []):
        problem = entry["problem"]
        if problem in IMAGE_VISIBLE and visible_in_image(entry, view):
            labels.add(problem)
    # Text-visible problems follow from the stated table itself, injected or not: a real
    # 20-direction series is short of directions too.
    if acq_facts is not None:
        if 0 < int(acq_facts.get("best_directions", ENOUGH_DIRECTIONS)) < ENOUGH_DIRECTIONS:
            labels.add("few_directions")
        if int(acq_facts.get("bad_vectors", 0)) > 0:
            labels.add("gradient_table")
    order = {p: i for i, p in enumerate((*IMAGE_VISIBLE, *TEXT_VISIBLE))}
    return tuple(sorted(labels, key=order.__getitem__))
