"""Subject motion: between volumes (framewise displacement) and within volumes (interleave).

Between volumes: the rigid part of the shared alignment (:mod:`lcid.dwi.registration`),
with the gradient-predicted eddy-current shift along phase encoding taken out, gives each
volume's position. Framewise displacement (FD) follows Power et al. 2012 (NeuroImage
59:2142): the sum of absolute changes of the three translations (mm) and of the three
rotations converted to arc length on a 50 mm sphere. Positions are compared within a
contrast group (b0s with b0s, each shell with itself), because the link between
different contrasts is not measurable to better than about a millimetre; FD of a volume
is its change from the previous volume of its own group.

Within a volume: with interleaved slice acquisition, motion during the TR displaces the
odd slices against the even ones ("venetian blind"). Each interior odd slice is compared
with the mean of its two even neighbours, and the in-plane shift between the two stacks
is found by phase correlation (scikit-image).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from lcid.dwi.context import CheckContext
from lcid.dwi.finding import Finding
from lcid.dwi.registration import align_series, fit_eddy
from lcid.dwi.severity import SCALE, confidence, grade
from lcid.io.scan import DWIScan

PROBLEM = "motion"
#: Radius (mm) of the sphere that converts rotations to displacement (Power et al. 2012).
SPHERE_MM = 50.0


def detect(scan: DWIScan, context: CheckContext) -> Finding:
    """Grade subject motion in ``scan``.

    Metrics: ``max_fd_mm``, ``mean_fd_mm``, ``max_translation_mm``, ``max_rotation_deg``
    (from each volume's group reference), ``interleave_shift_vox`` (largest odd/even
    in-plane slice shift), ``volumes_registered``. The graded magnitude is the larger of
    ``max_fd_mm`` and ``interleave_shift_vox`` (the severity scale gives both the same
    bounds). ``where.volumes``: volumes displaced from their group's median position by
    at least the ``mild`` bound (same 50 mm-sphere measure), or with an interleave shift
    of at least the ``mild`` bound.
    """
    if context.is_phantom:
        return Finding(problem=PROBLEM, applicable=False, metrics={"reason": "phantom"})
    alignment = align_series(scan, context)
    eddy = fit_eddy(alignment, scan.bvals, scan.bvecs, context.dw_volumes)
    translations = alignment.translations_mm.copy()
    translations[:, alignment.pe_axis] -= eddy.shift_mm
    rotvecs = alignment.rotation_vectors_rad
    fd = framewise_displacement(translations, alignment.rotations, alignment.group, alignment.registered)
    offset = displacement_from_median(translations, rotvecs, alignment.group, alignment.registered)
    interleave = interleave_shifts(scan.data, slice_axis=context.slice_axis)
    ok = alignment.registered
    max_fd = float(fd.max()) if fd.size else 0.0
    max_interleave = float(interleave.max()) if interleave.size else 0.0
    magnitude = max(max_fd, max_interleave)
    mild = SCALE[PROBLEM][0]
    affected = np.flatnonzero((offset >= mild) | (interleave >= mild))
    return Finding(
        problem=PROBLEM,
        severity=grade(magnitude, PROBLEM),
        confidence=confidence(magnitude, PROBLEM),
        metrics={
            "max_fd_mm": round(max_fd, 3),
            "mean_fd_mm": round(float(fd[ok].mean()) if ok.any() else 0.0, 3),
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
            "group": alignment.group,
        },
    )


def framewise_displacement(
    translations_mm: np.ndarray, rotations: np.ndarray, group: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """Power FD of each volume from the previous valid volume of the same group, mm ``(N,)``.

    Parameters
    ----------
    translations_mm
        ``(N, 3)`` translations.
    rotations
        ``(N, 3, 3)`` rotation matrices.
    group, valid
        ``(N,)`` group index and whether the volume's transform is usable; the first
        volume of each group (and invalid volumes) get FD 0.

    >>> t = np.array([[0, 0, 0], [1.0, 0, 0], [1.0, 0.5, 0]])
    >>> framewise_displacement(t, np.tile(np.eye(3), (3, 1, 1)), np.zeros(3, int), np.ones(3, bool)).tolist()
    [0.0, 1.0, 0.5]
    """
    fd = np.zeros(len(translations_mm))
    last: dict[int, int] = {}
    for v in range(len(translations_mm)):
        if not valid[v]:
            continue
        g = int(group[v])
        if g in last:
            p = last[g]
            relative = Rotation.from_matrix(rotations[v] @ rotations[p].T).as_rotvec()
            fd[v] = np.abs(translations_mm[v] - translations_mm[p]).sum() + SPHERE_MM * np.abs(relative).sum()
        last[g] = v
    return fd


def displacement_from_median(
    translations_mm: np.ndarray, rotvecs_rad: np.ndarray, group: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """Each volume's 50 mm-sphere displacement from its group's median position, mm ``(N,)``."""
    out = np.zeros(len(translations_mm))
    for g in np.unique(group[valid]):
        members = np.flatnonzero((group == g) & valid)
        t_med = np.median(translations_mm[members], axis=0)
        r_med = np.median(rotvecs_rad[members], axis=0)
        out[members] = np.abs(translations_mm[members] - t_med).sum(1) + SPHERE_MM * np.abs(
            rotvecs_rad[members] - r_med
        ).sum(1)
    return out


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
