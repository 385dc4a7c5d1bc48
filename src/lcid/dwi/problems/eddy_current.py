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

    Metrics: ``max_displacement_vox`` (graded: largest lower 95 % confidence bound of the
    gradient-explained PE displacement in the object, voxels, see
    :func:`supported_displacement`), ``max_fitted_displacement_vox`` (the fitted value itself), ``max_measured_displacement_vox`` (the same from the raw
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
    supported = supported_displacement(fit, alignment.points_mm, lever)
    worst = float(supported.max()) if supported.size else 0.0
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
            "max_fitted_displacement_vox": round(float(fitted.max()) if fitted.size else 0.0, 3),
            "max_measured_displacement_vox": round(float(measured.max()) if measured.size else 0.0, 3),
            "fit_r2": round(fit.r2, 3) if np.isfinite(fit.r2) else float("nan"),
            "coefficients_vox": np.round(fit.coefficients, 4),
            "pe_axis": alignment.pe_axis,
            "volumes_fitted": int(len(fit.volumes)),
        },
        where={"volumes": [int(v) for v in fit.volumes[(fitted >= mild) & (supported > 0)]] if worst >= mild else [], "slices": []},
        evidence=_evidence(fit, per_volume),
    )


#: One-sided normal quantile of the lower confidence bound that is graded (95 %).
Z_LOWER = 1.645


def supported_displacement(fit: EddyFit, points_mm: np.ndarray, lever_mm: np.ndarray) -> np.ndarray:
    """Per volume, the largest lower 95 % confidence bound of the fitted |PE displacement|.

    The gradient-explained field at point ``p`` of volume ``v`` is ``x_v β m_p`` with
    ``m_p = [1, p / lever]``; under ordinary least squares its variance is
    ``leverage_v · m_pᵀ Σ m_p`` (Σ the residual covariance of the four parameters). The
    bound ``|field| - 1.645 sd`` (clipped at 0) is what the data support: a gradient
    pattern fitted to registration noise or contrast-driven bias (low R²) is not graded.

    Returns
    -------
    ndarray ``(K,)``, voxels.
    """
    if len(fit.fitted_vox) == 0 or len(points_mm) == 0:
        return np.zeros(len(fit.fitted_vox))
    m = np.column_stack([np.ones(len(points_mm)), points_mm / lever_mm])  # (M, 4)
    field = fit.fitted_vox @ m.T  # (K, M)
    point_var = np.einsum("mi,ij,mj->m", m, fit.residual_cov, m)
    sd = np.sqrt(np.maximum(fit.leverage[:, None] * point_var[None], 0.0))
    return np.clip(np.abs(field) - Z_LOWER * sd, 0.0, None).max(axis=1)


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
