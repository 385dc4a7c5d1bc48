"""Eddy-current distortion: a gradient-dependent affine along the phase-encoding axis.

Each diffusion gradient leaves an eddy-current field that, to first order, is linear in
space and proportional to the gradient; in EPI it shifts, shears and scales the image
along phase encoding only (Jezzard et al. 1998, MRM 39:801). The detector takes the
per-volume PE affine from the shared alignment (:mod:`lcid.dwi.registration`), keeps
the part the gradients explain (:func:`lcid.dwi.registration.fit_eddy`) and grades the
largest resulting displacement inside the object in PE voxels. b0 volumes have no
diffusion gradient and are not distorted.
"""

from __future__ import annotations

import numpy as np

from lcid.dwi.context import CheckContext
from lcid.dwi.finding import Finding
from lcid.dwi.registration import EddyFit, align_series, fit_eddy
from lcid.dwi.severity import SCALE, confidence, grade
from lcid.io.scan import DWIScan

PROBLEM = "eddy_current"


def detect(scan: DWIScan, context: CheckContext) -> Finding:
    """Grade eddy-current distortion of ``scan``.

    Metrics: ``max_displacement_vox`` (largest gradient-explained PE displacement in the
    object, voxels; graded), ``max_measured_displacement_vox`` (the same from the raw
    per-volume estimates, including noise and non-gradient distortion), ``fit_r2``,
    ``coefficients_vox`` (3x4: rows b·gx, b·gy, b·gz in ms/µm²; columns PE shift and PE
    displacement across the object along voxel axes 0, 1, 2), ``pe_axis``.
    ``where.volumes``: volumes whose displacement reaches the ``mild`` bound.
    """
    if context.is_phantom:
        # A homogeneous phantom gives image registration nothing to hold on to along
        # its axis of symmetry, so per-volume distortion estimates are not trustworthy.
        return Finding(problem=PROBLEM, applicable=False, metrics={"reason": "phantom"})
    if len(context.dw_volumes) < 2:
        return Finding(problem=PROBLEM, metrics={"reason": "fewer than 2 diffusion-weighted volumes"})
    alignment = align_series(scan, context)
    fit = fit_eddy(alignment, scan.bvals, scan.bvecs, context.dw_volumes)
    lever = np.sqrt(np.mean(alignment.points_mm**2, axis=0))
    measured = max_displacement(fit.measured_vox - np.median(fit.measured_vox, axis=0), alignment.points_mm, lever)
    fitted = max_displacement(fit.fitted_vox, alignment.points_mm, lever)
    worst = float(fitted.max()) if fitted.size else 0.0
    severity = grade(worst, PROBLEM) if np.isfinite(fit.r2) else "none"
    mild = SCALE[PROBLEM][0]
    per_volume = np.zeros(scan.n_volumes)
    per_volume[fit.volumes] = fitted
    return Finding(
        problem=PROBLEM,
        severity=severity,
        confidence=confidence(worst, PROBLEM) if np.isfinite(fit.r2) else 0.0,
        metrics={
            "max_displacement_vox": round(worst, 3),
            "max_measured_displacement_vox": round(float(measured.max()) if measured.size else 0.0, 3),
            "fit_r2": round(fit.r2, 3) if np.isfinite(fit.r2) else float("nan"),
            "coefficients_vox": np.round(fit.coefficients, 4),
            "pe_axis": alignment.pe_axis,
            "volumes_fitted": int(len(fit.volumes)),
        },
        where={"volumes": [int(v) for v in fit.volumes[fitted >= mild]], "slices": []},
        evidence=_evidence(fit, per_volume),
    )


def max_displacement(params_vox: np.ndarray, points_mm: np.ndarray, lever_mm: np.ndarray) -> np.ndarray:
    """Largest |PE displacement| (voxels) over the object points, per volume.

    Parameters
    ----------
    params_vox
        ``(K, 4)``: PE shift and the displacement at one RMS extent along axes 0, 1, 2.
    points_mm
        Object points ``(M, 3)`` centred on the object, mm.
    lever_mm
        RMS extent of the object along each axis ``(3,)``, mm.

    Returns
    -------
    ndarray ``(K,)``
    """
    if len(params_vox) == 0 or len(points_mm) == 0:
        return np.zeros(len(params_vox))
    field = params_vox[:, :1] + params_vox[:, 1:] @ (points_mm / lever_mm).T  # (K, M)
    return np.abs(field).max(axis=1)


def _evidence(fit: EddyFit, per_volume: np.ndarray) -> dict:
    return {
        "displacement_vox": per_volume,
        "volumes": fit.volumes,
        "measured_params_vox": fit.measured_vox,
        "fitted_params_vox": fit.fitted_vox,
    }
