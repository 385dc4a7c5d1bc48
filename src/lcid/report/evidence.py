"""Which figures to draw for each finding, from whatever evidence its detector left.

Detectors put arrays in ``Finding.evidence`` under their own keys; this module draws a
figure only when its data are present and never fails on an absent or odd-shaped key.
Known keys get a tailored figure (the dropout map, the sagittal field-of-view view, the
ghost region, the gradient-flip scores); any other per-volume array ``(N,)`` becomes a
trace and any volume-by-slice array ``(N, Z)`` a map.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lcid.dwi.context import CheckContext
from lcid.dwi.finding import Finding
from lcid.dwi.severity import SCALE
from lcid.io.scan import DWIScan
from lcid.report import figures

log = logging.getLogger(__name__)

#: Problems whose per-volume evidence is the graded magnitude: draw the severity bounds.
GRADED_PER_VOLUME = {"motion": "mm", "eddy_current": "voxels", "ghosting": "ratio"}
#: Keys preferred for a problem's main per-volume trace, in order.
TRACE_KEYS = {
    "motion": ("fd_mm", "framewise_displacement_mm", "fd"),
    "eddy_current": ("shift_vox", "pe_shift_vox", "max_shift_vox", "displacement_vox"),
    "ghosting": ("gsr_per_volume",),
}
_NAMES = {"fd": "framewise displacement", "gsr": "ghost-to-signal ratio"}
_UNITS = {"mm": "mm", "vox": "voxels", "deg": "degrees", "rad": "radians", "mm2": "mm²"}
MAX_FIGURES_PER_PROBLEM = 3


@dataclass(frozen=True)
class Evidence:
    """One figure for the report: PNG bytes and a caption for beginners."""

    caption: str
    png: bytes


def overview_figures(scan: DWIScan, context: CheckContext | None) -> list[Evidence]:
    """b0 mosaic, mean highest-shell DWI mosaic and the gradient directions on a sphere."""
    out: list[Evidence] = []
    mask = context.mask if context is not None else None
    b0 = context.b0 if context is not None else _mean_b0(scan)
    _add(out, "Axial slices of the mean b0 (no diffusion weighting). Check the head is whole and bright.",
         lambda: figures.mosaic(b0, title="Mean b0 image", affine=scan.affine, mask=mask))  # fmt: skip
    dw = np.flatnonzero(scan.bvals > 50)
    if dw.size:
        top = float(scan.bvals[dw].max())
        volumes = dw[np.abs(scan.bvals[dw] - top) <= 100]
        mean_dw = scan.data[..., volumes].mean(axis=3)
        _add(out, f"Mean of the {volumes.size} volumes at b≈{top:.0f} s/mm². Fluid (the ventricles) is dark here; "
             "stripes, dark bands or an outline shifted from the b0 are signs of problems.",
             lambda: figures.mosaic(mean_dw, title=f"Mean diffusion-weighted image, b≈{top:.0f} s/mm²",
                                    affine=scan.affine, mask=mask))  # fmt: skip
        _add(out, "Each dot is one gradient direction; a good scheme covers the sphere evenly.",
             lambda: figures.gradient_sphere(scan.bvals, scan.bvecs))  # fmt: skip
    return out


def problem_figures(finding: Finding, scan: DWIScan, context: CheckContext | None) -> list[Evidence]:
    """The figures that show the evidence for one finding (possibly none)."""
    if not finding.applicable:
        return []
    out: list[Evidence] = []
    special = _SPECIAL.get(finding.problem)
    used: set[str] = set()
    if special is not None:
        used = special(finding, scan, context, out)
    _generic(finding, scan, out, skip=used)
    return out[:MAX_FIGURES_PER_PROBLEM]


def _add(out: list[Evidence], caption: str, draw: Callable[[], bytes]) -> None:
    try:
        out.append(Evidence(caption, draw()))
    except Exception as exc:  # noqa: BLE001 - a figure must never break the report
        log.warning("figure skipped (%s): %s", caption[:40], exc)


def _array(evidence: dict[str, Any], key: str) -> np.ndarray | None:
    value = evidence.get(key)
    if value is None:
        return None
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return None
    return array if array.size and np.isfinite(array).any() else None


def _label(key: str) -> str:
    """``fd_mm`` -> ``fd (mm)``."""
    parts = key.split("_")
    unit = _UNITS.get(parts[-1])
    words = parts[:-1] if unit else parts
    name = " ".join(_NAMES.get(w, w) for w in words)
    return f"{name} ({unit})" if unit else name


def _generic(finding: Finding, scan: DWIScan, out: list[Evidence], *, skip: set[str]) -> None:
    n = scan.n_volumes
    evidence = finding.evidence or {}
    flagged = [int(v) for v in (finding.where or {}).get("volumes", [])]
    preferred = [k for k in TRACE_KEYS.get(finding.problem, ()) if k in evidence]
    keys = preferred + [k for k in evidence if k not in preferred]
    triplets = {k: a for k in keys if k not in skip and (a := _array(evidence, k)) is not None and a.shape == (n, 3)}
    main_drawn = False
    for key in keys:
        if key in skip or key in triplets:
            continue
        array = _array(evidence, key)
        if array is None:
            continue
        if array.shape == (n,) and not main_drawn:
            main_drawn = True
            thresholds = None
            if finding.problem in GRADED_PER_VOLUME:
                thresholds = dict(zip(("mild", "moderate", "severe"), SCALE[finding.problem], strict=True))
            _add(out, f"{_label(key).capitalize()}, one value per volume; red dots are the volumes flagged.",
                 lambda a=array, k=key, t=thresholds: figures.volume_trace(
                     a, title=f"{finding.problem.replace('_', ' ').capitalize()}: {_label(k)} per volume",
                     ylabel=_label(k), flagged=flagged, thresholds=t,
                     extra={_label(t3): v for t3, v in triplets.items()} or None))  # fmt: skip
        elif array.ndim == 2 and array.shape[0] == n and array.shape[1] == scan.shape[2] and array.shape[1] > 1:
            _add(out, f"{_label(key).capitalize()} for every volume (x) and slice (y).",
                 lambda a=array, k=key: figures.slice_map(a, title=_label(k).capitalize(), colorbar_label=_label(k),
                                                          pairs=(finding.where or {}).get("pairs", [])))  # fmt: skip


def _missing_slices(finding: Finding, scan: DWIScan, context: CheckContext | None, out: list[Evidence]) -> set[str]:
    evidence = finding.evidence or {}
    pairs = [tuple(int(x) for x in p) for p in (finding.where or {}).get("pairs", [])]
    loss = _array(evidence, "signal_loss")
    if loss is not None and loss.ndim == 2:
        _add(out, "Fraction of the expected signal lost in each slice of each volume (0 = as expected, 1 = empty). "
             "Red boxes are the slices flagged as dropouts; grey slices hold too little brain to score.",
             lambda: figures.slice_map(np.clip(loss, 0, 1), title="Signal loss per volume and slice",
                                       colorbar_label="signal lost (fraction)", pairs=pairs, cmap="magma",
                                       vmin=0, vmax=1))  # fmt: skip
    if pairs:
        counts: dict[int, int] = {}
        for v, _ in pairs:
            counts[v] = counts.get(v, 0) + 1
        worst = max(counts, key=counts.__getitem__)
        slices = [s for v, s in pairs if v == worst]
        mask = context.mask if context is not None else None
        _add(out, f"Volume {worst}, the one with the most dropouts; its flagged slices are outlined in red.",
             lambda: figures.mosaic(scan.data[..., worst], title=f"Volume {worst} (b={scan.bvals[worst]:.0f} s/mm²)",
                                    affine=scan.affine, mask=mask, highlight=slices))  # fmt: skip
    return {"signal_loss", "z_scores", "slice_area_voxels"}


def _fov_cutoff(finding: Finding, scan: DWIScan, context: CheckContext | None, out: list[Evidence]) -> set[str]:
    evidence = finding.evidence or {}
    b0, mask = evidence.get("sagittal_b0"), evidence.get("sagittal_mask")
    if (b0 is None or mask is None) and context is not None:
        b0, mask = _sagittal(context.b0, context.mask, scan.affine)
    if b0 is not None:
        pixel = _ras_pixel_mm(scan.affine, scan.voxel_size_mm)
        cut = list((finding.metrics or {}).get("cut_edges") or [])
        _add(out, "The middle sagittal slice: the cyan line is the brain mask, the dashed lines the top and bottom "
             "of the imaged slab. Brain touching a red line continues outside the field of view.",
             lambda: figures.sagittal_fov(np.asarray(b0), None if mask is None else np.asarray(mask, bool),
                                          pixel_mm=pixel, cut_edges=cut))  # fmt: skip
    return {"sagittal_b0", "sagittal_mask", "si_profile_mm2", "si_positions_mm"}


def _ghosting(finding: Finding, scan: DWIScan, context: CheckContext | None, out: list[Evidence]) -> set[str]:
    region = (finding.evidence or {}).get("ghost_region")
    if region is not None and context is not None and np.shape(region) == context.b0.shape:
        region = np.asarray(region, bool)
        k = int(np.argmax(context.mask.sum(axis=(0, 1)))) if context.mask.any() else context.b0.shape[2] // 2
        _add(out, "The b0 with a bright window: the red zone is where an N/2 ghost would fall (half a field of view "
             "away along phase encoding). A faint copy of the head there is a ghost.",
             lambda: figures.overlay_slice(context.b0[:, :, k], region[:, :, k], title=f"b0, slice {k}",
                                           region_label="expected ghost region", affine=scan.affine))  # fmt: skip
    return {"ghost_region"}


def _gradient_table(finding: Finding, scan: DWIScan, context: CheckContext | None, out: list[Evidence]) -> set[str]:
    scores = (finding.evidence or {}).get("coherence_by_transform")
    if isinstance(scores, dict) and len(scores) > 1:
        _add(out, "How well the fibre directions agree with their neighbours for each relabelling of the b-vector "
             "axes. The table as given (grey) should score highest; a clearly better alternative (green) means an "
             "axis is flipped or swapped.",
             lambda: figures.score_bars({str(k): float(v) for k, v in scores.items()}, title="Fibre coherence by "
                                        "b-vector relabelling", xlabel="fibre coherence index", reference="x,y,z"))  # fmt: skip
    return {"coherence_by_transform"}


_SPECIAL = {
    "missing_slices": _missing_slices,
    "fov_cutoff": _fov_cutoff,
    "ghosting": _ghosting,
    "gradient_table": _gradient_table,
}


def _mean_b0(scan: DWIScan) -> np.ndarray:
    b0 = np.flatnonzero(scan.bvals <= 50)
    volumes = b0 if b0.size else np.flatnonzero(scan.bvals == scan.bvals.min())
    return scan.data[..., volumes].mean(axis=3)


def _sagittal(b0: np.ndarray, mask: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Mid-sagittal b0 and mask, ``(A, S)`` in RAS order."""
    from nibabel.orientations import apply_orientation, io_orientation

    ornt = io_orientation(np.asarray(affine, dtype=float))
    if np.isnan(ornt).any():
        return None, None
    b0_ras = apply_orientation(b0, ornt)
    mask_ras = apply_orientation(mask, ornt)
    x = b0_ras.shape[0] // 2
    return b0_ras[x], mask_ras[x]


def _ras_pixel_mm(affine: np.ndarray, voxel_mm: tuple[float, float, float]) -> tuple[float, float]:
    """Pixel size (mm) of the anterior and superior axes of the RAS-ordered image."""
    from nibabel.orientations import io_orientation

    ornt = io_orientation(np.asarray(affine, dtype=float))
    size = {int(w): voxel_mm[i] for i, w in enumerate(ornt[:, 0]) if np.isfinite(w)}
    return float(size.get(1, 1.0)), float(size.get(2, 1.0))
