"""Subject motion: between volumes (framewise displacement) and within volumes (interleave).

Between volumes: the rigid part of the shared alignment (:mod:`lcid.dwi.registration`),
with the gradient-predicted eddy-current shift along phase encoding taken out, gives each
volume's position relative to its contrast group's reference (b0s, each shell); the link
between contrasts is not measurable to better than about a millimetre, so each group's
median position is taken as the head's resting position (most volumes do not move).
Each volume's displacement from it is measured on the 50 mm sphere of Power et al. 2012
(NeuroImage 59:2142): Σ|Δt| (mm) + 50 mm · Σ|Δθ| (rad).

Registration of a single low-SNR volume is noisy (a few tenths of a mm on real data), and
frame-to-frame differences of noisy positions double that noise. A volume therefore
counts as moved only where its position stands out of its group's estimator noise,
each rigid parameter judged against its own robust spread (see
:func:`significant_displacements`); the others are set to the resting position. Framewise displacement (FD, Power et
al.) is then the change between consecutive registered volumes in acquisition order.

Within a volume: with interleaved slice acquisition, motion during the TR displaces the
odd slices against the even ones ("venetian blind"). Each interior odd slice is compared
with the mean of its two even neighbours, and the in-plane shift between the two stacks
is found by phase correlation (scikit-image).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from lcid.dwi.context import CheckContext
from lcid.dwi.finding import Finding
from lcid.dwi.registration import align_series, fit_eddy
from lcid.dwi.severity import SCALE, confidence, grade
from lcid.io.scan import DWIScan

PROBLEM = "motion"
#: Radius (mm) of the sphere that converts rotations to displacement (Power et al. 2012).
SPHERE_MM = 50.0
#: Per-volume false-alarm probability of the test that a volume moved beyond its group's
#: estimator noise (see :func:`significant_displacements`).
FALSE_ALARM = 1e-3
#: Smallest per-parameter noise spread (mm): registration of clean synthetic data can be
#: nearly exact, and a few hundredths of a millimetre are not motion.
NOISE_FLOOR_MM = 0.05
#: Robust standard deviations (MAD) above the group's median pooled displacement that a
#: moved volume must also reach (the usual MAD outlier rule, Iglewicz & Hoaglin 1993).
NOISE_K = 3.5
#: Fewest registered volumes of one contrast group for a noise estimate (and so for
#: judging motion between its volumes).
MIN_ASSESSED = 4


def detect(scan: DWIScan, context: CheckContext) -> Finding:
    """Grade subject motion in ``scan``.

    Metrics: ``max_fd_mm``, ``mean_fd_mm`` (FD of the denoised positions, see module
    doc), ``max_displacement_mm`` (largest raw displacement from a group median, noise
    included), ``volumes_moved``, ``max_translation_mm``, ``max_rotation_deg`` (raw, from
    each volume's group reference), ``interleave_shift_vox`` (largest odd/even in-plane
    slice shift), ``volumes_registered``. The graded magnitude is the larger of
    ``max_fd_mm`` and ``interleave_shift_vox`` (the severity scale gives both the same
    bounds). ``where.volumes``: moved volumes displaced by at least half the ``mild``
    bound, and volumes with an interleave shift of at least the ``mild`` bound.
    """
    if context.is_phantom:
        return Finding(problem=PROBLEM, applicable=False, metrics={"reason": "phantom"})
    alignment = align_series(scan, context)
    eddy = fit_eddy(alignment, scan.bvals, scan.bvecs, context.dw_volumes)
    translations = alignment.translations_mm.copy()
    translations[:, alignment.pe_axis] -= eddy.shift_mm
    rotvecs = alignment.rotation_vectors_rad
    ok = alignment.registered
    # A small shell shares its registration reference with another group (possibly the
    # b0s); its volumes are still judged only against volumes of their own kind.
    group = 2 * alignment.group + np.isin(np.arange(scan.n_volumes), context.b0_volumes)
    offset = displacement_from_median(translations, rotvecs, group, ok)
    moved = significant_displacements(translations, rotvecs, group, ok)
    t_rest, r_rest = resting_positions(translations, rotvecs, group, ok, moved=moved)
    fd = framewise_displacement(t_rest, r_rest, ok)
    interleave = interleave_shifts(scan.data, slice_axis=context.slice_axis)
    max_fd = float(fd.max()) if fd.size else 0.0
    max_interleave = float(interleave.max()) if interleave.size else 0.0
    magnitude = max(max_fd, max_interleave)
    mild = SCALE[PROBLEM][0]
    affected = np.flatnonzero((moved & (offset >= mild / 2)) | (interleave >= mild))
    return Finding(
        problem=PROBLEM,
        severity=grade(magnitude, PROBLEM),
        confidence=confidence(magnitude, PROBLEM),
        metrics={
            "max_fd_mm": round(max_fd, 3),
            "mean_fd_mm": round(float(fd[ok].mean()) if ok.any() else 0.0, 3),
            "max_displacement_mm": round(float(offset.max()) if ok.any() else 0.0, 3),
            "volumes_moved": int(moved.sum()),
            "max_translation_mm": round(float(np.abs(translations[ok]).max()) if ok.any() else 0.0, 3),
            "max_rotation_deg": round(float(np.degrees(np.linalg.norm(rotvecs[ok], axis=1)).max()) if ok.any() else 0.0, 3),
            "interleave_shift_vox": round(max_interleave, 3),
            "volumes_registered": int(ok.sum()),
        },
        where={"volumes": [int(v) for v in affected], "slices": []},
        evidence={
            "fd_mm": fd,
            "displacement_mm": offset,
            "translations_mm": translations,
            "rotations_deg": np.degrees(rotvecs),
            "interleave_shift_vox": interleave,
            "group": group,
        },
    )


def framewise_displacement(translations_mm: np.ndarray, rotvecs_rad: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Power FD of each volume from the previous valid volume, mm ``(N,)``.

    Parameters
    ----------
    translations_mm, rotvecs_rad
        ``(N, 3)`` positions (mm) and rotation vectors (rad) in one frame.
    valid
        ``(N,)`` whether the volume's position is usable; the first valid volume (and
        invalid volumes) get FD 0.

    >>> t = np.array([[0, 0, 0], [1.0, 0, 0], [1.0, 0.5, 0]])
    >>> framewise_displacement(t, np.zeros((3, 3)), np.ones(3, bool)).tolist()
    [0.0, 1.0, 0.5]
    """
    fd = np.zeros(len(translations_mm))
    index = np.flatnonzero(valid)
    if index.size > 1:
        dt = np.abs(np.diff(translations_mm[index], axis=0)).sum(1)
        dr = np.abs(np.diff(rotvecs_rad[index], axis=0)).sum(1)
        fd[index[1:]] = dt + SPHERE_MM * dr
    return fd


def displacement_from_median(
    translations_mm: np.ndarray, rotvecs_rad: np.ndarray, group: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """Each volume's 50 mm-sphere displacement from its group's median position, mm ``(N,)``."""
    t, r = resting_positions(translations_mm, rotvecs_rad, group, valid, moved=valid)
    return np.abs(t).sum(1) + SPHERE_MM * np.abs(r).sum(1)


def significant_displacements(
    translations_mm: np.ndarray, rotvecs_rad: np.ndarray, group: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """Volumes whose position stands out of their group's estimator noise, bool ``(N,)``.

    Two tests must agree (each alone mistakes a kind of estimator error for motion):

    * per parameter: each of the six rigid parameters (rotations as arcs on the 50 mm
      sphere, so all six are in mm) is centred on its group median and divided by its own
      robust spread (``1.4826 · MAD``, at least :data:`NOISE_FLOOR_MM`); the sum of the six
      squares must exceed the χ²(6) quantile of :data:`FALSE_ALARM`. Residual eddy-current
      shifts make the translation along phase encoding several times noisier than the
      other parameters on real series; a pooled test alone takes that noise for motion.
    * pooled: the displacement from the group median (Σ|Δt| + 50 mm · Σ|Δθ|) must exceed
      the group's median displacement by :data:`NOISE_K` robust standard deviations.
      Registration of a few gradient directions can be biased by their contrast while all
      others register almost exactly; the per-parameter test alone takes that bias for
      motion.

    Groups of fewer than :data:`MIN_ASSESSED` volumes have no usable noise estimate: their
    volumes are not assessed (never counted as moved).

    >>> t = np.zeros((8, 3)); t[:, 1] = [0.3, -0.4, 0.5, -0.2, 0.1, 0.6, -0.5, 0.0]
    >>> t[:, 0] = [0.02, -0.01, 0.0, 0.01, -0.02, 0.0, 0.01, 1.5]
    >>> significant_displacements(t, np.zeros((8, 3)), np.zeros(8, int), np.ones(8, bool)).tolist()
    [False, False, False, False, False, False, False, True]
    """
    params = np.concatenate([translations_mm, SPHERE_MM * rotvecs_rad], axis=1)
    limit = float(stats.chi2.isf(FALSE_ALARM, params.shape[1]))
    out = np.zeros(len(params), bool)
    for g in np.unique(group[valid]):
        members = np.flatnonzero((group == g) & valid)
        if len(members) < MIN_ASSESSED:
            continue
        centred = params[members] - np.median(params[members], axis=0)
        spread = np.maximum(1.4826 * np.median(np.abs(centred), axis=0), NOISE_FLOOR_MM)
        per_parameter = ((centred / spread) ** 2).sum(1) > limit
        pooled = np.abs(centred).sum(1)
        centre = float(np.median(pooled))
        beyond = pooled > centre + NOISE_K * 1.4826 * float(np.median(np.abs(pooled - centre)))
        out[members] = per_parameter & beyond
    return out


def resting_positions(
    translations_mm: np.ndarray, rotvecs_rad: np.ndarray, group: np.ndarray, valid: np.ndarray, *, moved: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Positions relative to each group's median, with volumes not ``moved`` set to zero.

    Returns translations (mm) and rotation vectors (rad), both ``(N, 3)``.
    """
    t = np.zeros_like(translations_mm)
    r = np.zeros_like(rotvecs_rad)
    for g in np.unique(group[valid]):
        members = np.flatnonzero((group == g) & valid)
        keep = members[moved[members]]
        t[keep] = translations_mm[keep] - np.median(translations_mm[members], axis=0)
        r[keep] = rotvecs_rad[keep] - np.median(rotvecs_rad[members], axis=0)
    return t, r


def interleave_shifts(data: np.ndarray, *, slice_axis: int = 2) -> np.ndarray:
    """In-plane shift (voxels) of the odd slices against their even neighbours, per volume ``(N,)``.

    Each interior odd slice ``z`` is compared with ``(slice[z-1] + slice[z+1]) / 2``; the
    sub-voxel shift between the two stacks comes from phase correlation
    (:func:`skimage.registration.phase_cross_correlation`, upsampling 10). With fewer than
    5 slices the comparison is impossible and the result is 0.
    """
    from skimage.registration import phase_cross_correlation

    stack = np.moveaxis(np.asarray(data, np.float32), slice_axis, 2)
    n_slices = stack.shape[2]
    out = np.zeros(stack.shape[3])
    if n_slices < 5:
        return out
    odd = np.arange(1, n_slices - 1, 2)
    for v in range(stack.shape[3]):
        vol = stack[..., v]
        vol = vol / max(float(np.abs(vol).mean()), 1e-12)  # unit scale: no float32 overflow in the spectra
        moving = vol[:, :, odd]
        reference = 0.5 * (vol[:, :, odd - 1] + vol[:, :, odd + 1])
        if not np.any(reference) or not np.any(moving):
            continue
        # One shift for the whole stack (3D correlation); its slice-axis part is ~0.
        shift, _, _ = phase_cross_correlation(
            reference.transpose(2, 0, 1), moving.transpose(2, 0, 1), upsample_factor=10, normalization=None
        )
        out[v] = float(np.hypot(shift[1], shift[2]))
    return out
