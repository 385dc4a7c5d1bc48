"""Slice-wise signal dropout: slices that lost their signal in individual volumes.

The method follows the outlier replacement of FSL eddy (``--repol``; Andersson et al.
2016, NeuroImage 141:556-572) without its Gaussian-process model: for every volume ``v``
and slice ``z`` the masked mean signal ``m[v, z]`` is compared with a prediction, and a
slice is an outlier when the log ratio observed/predicted lies more than
:data:`OUTLIER_Z` robust standard deviations below zero (eddy's default ``--ol_nstd 4``).

* Shells with at least :data:`MIN_MODEL_VOLUMES` volumes: the slice mean depends on the
  gradient direction (a slice through a fibre bundle is darker when the gradient runs
  along the bundle, the more so at high b), so the prediction for ``m[v, z]`` is a robust
  per-slice fit of ``log m[·, z]`` as a quadratic form of the gradient direction, the
  apparent diffusion tensor of the slice (the 6-parameter model of Basser et al. 1994;
  Tukey bisquare weights, so a dropout does not pull its own prediction). eddy's
  Gaussian process plays this role in ``--repol``.
* Shells with at least :data:`MIN_SHELL_VOLUMES` volumes (but fewer than that): the
  prediction is the median of the same slice over the other volumes of the shell.
* Either way the residuals are taken relative to the volume's own median over slices (so
  global intensity changes between volumes do not count). The noise scale of each slice is the MAD of the log ratios over the
  volumes of the shell: at b = 2000-3000 s/mm² the slice means are noisier and
  direction-dependent, and the threshold widens with them instead of misfiring as a
  fixed relative threshold does.
* Smaller groups (a single b0, a shell of two volumes): the prediction is the mean of
  the neighbouring brain slices of the same volume, the scale the MAD of those
  residuals over all such volumes.

Multiband acquisitions excite slices ``k, k + Z/MB, ...`` together, so a dropout hits the
whole group. Groups come from the sidecar's ``SliceTiming`` (slices with equal times)
or ``MultibandAccelerationFactor``; a slice whose group as a whole is an outlier
(Stouffer-combined z below ``-OUTLIER_Z``) is flagged from the weaker per-slice bar
:data:`PARTNER_Z`.

Only diffusion-weighted volumes are scored: the dropout is dephasing by motion during the
diffusion encoding, which a b0 volume has not got (eddy likewise detects outliers in the
diffusion-weighted volumes only). Only slices with enough brain are scored
(:data:`MIN_BRAIN_FRACTION`): edge slices have few voxels and large partial-volume changes.
Neither are the first and last slice of the field of view: a volume that moved
through-plane has no data for part of them (eddy likewise leaves out the voxels that move
out of the field of view), and without registration that loss cannot be told from a
dropout.

A dropout is local to the slice (or multiband group) excited at the moment of the motion:
its neighbouring slices, acquired at other times, keep their signal. A volume that moved
through-plane, or whose thick slices shift partial volume at the edge of the brain,
changes a run of neighbouring slices smoothly instead. A flagged pair is therefore
reported only when the signal it lost, ``1 - observed/expected``, reaches the ``mild``
bound of the severity scale both against the other volumes and against the mean of its
scored neighbouring slices in the same volume (``local_loss``); the magnitude graded is
the largest loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from lcid.dwi.context import CheckContext
from lcid.dwi.finding import Finding
from lcid.dwi.severity import SCALE, grade
from lcid.dwi.severity import confidence as magnitude_confidence
from lcid.io.scan import DWIScan

PROBLEM = "missing_slices"
#: Robust z below which a slice is an outlier (eddy ``--ol_nstd`` default).
OUTLIER_Z = 4.0
#: Per-slice z bar for the members of a multiband group that is an outlier as a whole.
PARTNER_Z = 2.0
#: A slice is scored when its mask covers at least this fraction of the largest slice's mask.
MIN_BRAIN_FRACTION = 0.2
#: ... and at least this many voxels (means of fewer voxels are dominated by noise).
MIN_SLICE_VOXELS = 20
#: Shells with at least this many volumes are predicted across volumes (median of >= 3 others).
MIN_SHELL_VOLUMES = 4
#: Shells with at least this many volumes are predicted by the per-slice direction model
#: (twice its 6 parameters).
MIN_MODEL_VOLUMES = 12
#: Tukey bisquare constant (robust standard deviations) of the direction-model fit.
TUKEY_C = 4.685
#: Floor on the log-ratio noise scale: 1 % signal changes are never significant on their own.
MIN_LOG_SCALE = 0.01


def detect(scan: DWIScan, context: CheckContext) -> Finding:
    """Find (volume, slice) pairs with signal dropout.

    Parameters
    ----------
    scan
        The series, data ``(X, Y, Z, N)``.
    context
        Precomputed mask, shells and slice axis.

    Returns
    -------
    Finding
        ``where.pairs`` lists ``[volume, slice]`` (0-based), ``where.volumes`` and
        ``where.slices`` the distinct volumes and slices among them; ``evidence`` holds the
        volume-by-slice ``z_scores`` and ``signal_loss`` matrices ``(N, Z)`` (NaN where a
        slice was not scored).
    """
    data = np.moveaxis(scan.data, context.slice_axis, 2)
    mask = np.moveaxis(context.mask, context.slice_axis, 2)
    means, area = slice_means(data, mask)
    scored = (area >= MIN_BRAIN_FRACTION * max(int(area.max()), 1)) & (area >= MIN_SLICE_VOXELS)
    scored[[0, -1]] = False
    n_slices = means.shape[1]
    groups = multiband_groups(n_slices, scan.sidecar)
    b0 = set(context.b0_volumes)
    shells = [[v for v in s.volumes if v not in b0] for s in context.shells]
    log_ratio, z = dropout_scores(means, scored, [v for v in shells if v], bvecs=scan.bvecs)
    flagged = flag_outliers(z, groups)
    loss = 1.0 - np.exp(log_ratio)
    local = 1.0 - np.exp(log_ratio - neighbour_mean(log_ratio))
    mild = SCALE[PROBLEM][0]
    reported = flagged & (loss >= mild) & (local >= mild)
    pairs = [[int(v), int(s)] for v, s in zip(*np.nonzero(reported), strict=True)]
    worst = float(loss[reported].max()) if pairs else 0.0
    metrics = {
        "n_bad_pairs": len(pairs),
        "n_bad_volumes": len({p[0] for p in pairs}),
        "max_signal_loss": round(worst, 4),
        "n_weak_outliers": int((flagged & ~reported).sum()),
        "n_smooth_changes": int((flagged & (loss >= mild) & (local < mild)).sum()),
        "min_z": _finite_min(z),
        "n_scored_slices": int(scored.sum()),
        "multiband_factor": len(groups[0]) if groups else 1,
    }
    return Finding(
        problem=PROBLEM,
        severity=grade(worst, PROBLEM) if pairs else "none",
        confidence=_confidence(z, loss),
        metrics=metrics,
        where={
            "volumes": sorted({p[0] for p in pairs}),
            "slices": sorted({p[1] for p in pairs}),
            "pairs": pairs,
        },
        evidence={"z_scores": z, "signal_loss": np.where(np.isfinite(z), loss, np.nan), "slice_area_voxels": area},
    )


def slice_means(data: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masked mean signal of every slice of every volume.

    Parameters
    ----------
    data
        Signal ``(X, Y, Z, N)`` with slices along the third axis.
    mask
        Bool ``(X, Y, Z)``.

    Returns
    -------
    means, area
        ``(N, Z)`` mean signal (0 where the slice has no mask) and ``(Z,)`` mask voxels per slice.
    """
    weights = mask.astype(data.dtype)
    area = weights.sum(axis=(0, 1))
    sums = np.einsum("xyzn,xyz->nz", data, weights, optimize=True)
    return sums / np.maximum(area, 1.0)[None, :], area.astype(int)


def multiband_groups(n_slices: int, sidecar: dict) -> list[list[int]] | None:
    """Slices excited together, from ``SliceTiming`` or ``MultibandAccelerationFactor``.

    >>> multiband_groups(6, {"MultibandAccelerationFactor": 2})
    [[0, 3], [1, 4], [2, 5]]
    >>> multiband_groups(4, {"SliceTiming": [0, 0.5, 0, 0.5]})
    [[0, 2], [1, 3]]
    """
    timing = sidecar.get("SliceTiming")
    if isinstance(timing, Sequence) and len(timing) == n_slices:
        times = np.round(np.asarray(timing, dtype=float), 4)
        groups = [np.flatnonzero(times == t).tolist() for t in np.unique(times)]
        if len(groups) < n_slices and len({len(g) for g in groups}) == 1:
            return groups
    try:
        factor = int(sidecar.get("MultibandAccelerationFactor", 1))
    except (TypeError, ValueError):
        return None
    if factor < 2 or n_slices % factor:
        return None
    step = n_slices // factor
    return [list(range(k, n_slices, step)) for k in range(step)]


def dropout_scores(
    means: np.ndarray, scored: np.ndarray, shell_volumes: Sequence[Sequence[int]], *, bvecs: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Log ratio observed/predicted and its robust z for every (volume, slice).

    Parameters
    ----------
    means
        ``(N, Z)`` masked slice means.
    scored
        Bool ``(Z,)``: slices with enough brain.
    shell_volumes
        Volume indices of each shell (b0 volumes form a shell of their own).
    bvecs
        ``(N, 3)`` gradient directions; without them every shell is predicted by medians.

    Returns
    -------
    log_ratio, z
        ``(N, Z)`` arrays; NaN where a slice is not scored.
    """
    n_vol, n_slices = means.shape
    log_ratio = np.full((n_vol, n_slices), np.nan)
    z = np.full((n_vol, n_slices), np.nan)
    if scored.sum() < 2:
        return log_ratio, z
    logs = np.log(np.maximum(means, 1e-12))
    small: list[int] = []
    for volumes in shell_volumes:
        volumes = list(volumes)
        if len(volumes) < MIN_SHELL_VOLUMES:
            small.extend(volumes)
            continue
        shell_logs = logs[np.ix_(volumes, np.flatnonzero(scored))]
        if bvecs is not None and len(volumes) >= MIN_MODEL_VOLUMES:
            r = _direction_model_residuals(shell_logs, bvecs[volumes])
            dof = np.sqrt(len(volumes) / (len(volumes) - 6))  # fitted residuals are smaller than the noise
        else:
            r, dof = _across_volume_residuals(shell_logs), 1.0
        centre = np.median(r, axis=0)
        scale = np.maximum(dof * 1.4826 * np.median(np.abs(r - centre), axis=0), MIN_LOG_SCALE)
        # A slice's scale is never taken below half the shell's typical scale: a MAD over
        # a dozen volumes can be small by chance.
        scale = np.maximum(scale, 0.5 * np.median(scale))
        log_ratio[np.ix_(volumes, np.flatnonzero(scored))] = r
        z[np.ix_(volumes, np.flatnonzero(scored))] = r / scale
    if small:
        r = _neighbour_residuals(logs[small][:, scored])
        scale = max(1.4826 * float(np.median(np.abs(r))), MIN_LOG_SCALE)
        log_ratio[np.ix_(small, np.flatnonzero(scored))] = r
        z[np.ix_(small, np.flatnonzero(scored))] = r / scale
    return log_ratio, z


def _across_volume_residuals(logs: np.ndarray) -> np.ndarray:
    """``(V, S)`` log means -> residuals against the leave-one-out median of the other volumes,
    after removing each volume's median offset over slices."""
    n = logs.shape[0]
    predicted = np.empty_like(logs)
    for v in range(n):
        predicted[v] = np.median(np.delete(logs, v, axis=0), axis=0)
    residual = logs - predicted
    return residual - np.median(residual, axis=1, keepdims=True)


def _direction_model_residuals(logs: np.ndarray, bvecs: np.ndarray) -> np.ndarray:
    """``(V, S)`` log means of one shell -> residuals against a robust per-slice fit of
    ``log m = gᵀ A g`` (``A`` symmetric, 6 parameters; ``g`` the unit gradient of each
    volume), after removing each volume's median offset over slices.

    Iteratively reweighted least squares with Tukey bisquare weights (scale: MAD of the
    current residuals of the slice), 10 iterations from ordinary least squares.
    """
    g = bvecs / np.maximum(np.linalg.norm(bvecs, axis=1, keepdims=True), 1e-9)
    design = np.column_stack([g[:, 0] ** 2, g[:, 1] ** 2, g[:, 2] ** 2, 2 * g[:, 0] * g[:, 1], 2 * g[:, 0] * g[:, 2], 2 * g[:, 1] * g[:, 2]])
    weights = np.ones_like(logs)
    residual = logs
    for _ in range(10):
        fitted = np.empty_like(logs)
        for s in range(logs.shape[1]):
            w = np.sqrt(weights[:, s])
            beta, *_ = np.linalg.lstsq(design * w[:, None], logs[:, s] * w, rcond=None)
            fitted[:, s] = design @ beta
        residual = logs - fitted
        scale = np.maximum(1.4826 * np.median(np.abs(residual), axis=0), MIN_LOG_SCALE / 10)
        u = residual / (TUKEY_C * scale)
        weights = np.where(np.abs(u) < 1, (1 - u**2) ** 2, 0.0)
    return residual - np.median(residual, axis=1, keepdims=True)


def _neighbour_residuals(logs: np.ndarray) -> np.ndarray:
    """``(V, S)`` log means -> residuals against the mean of each slice's scored neighbours."""
    padded = np.concatenate([logs[:, 1:2], logs, logs[:, -2:-1]], axis=1)
    return logs - 0.5 * (padded[:, :-2] + padded[:, 2:])


def neighbour_mean(values: np.ndarray) -> np.ndarray:
    """``(N, Z)`` -> mean of each element's finite neighbours along the slice axis (0 where
    it has none, so that an isolated scored slice is compared with nothing)."""
    finite = np.isfinite(values)
    padded = np.pad(np.where(finite, values, 0.0), ((0, 0), (1, 1)))
    count = np.pad(finite.astype(float), ((0, 0), (1, 1)))
    total = padded[:, :-2] + padded[:, 2:]
    n = count[:, :-2] + count[:, 2:]
    return np.where(n > 0, total / np.maximum(n, 1.0), 0.0)


def flag_outliers(z: np.ndarray, groups: list[list[int]] | None) -> np.ndarray:
    """Bool ``(N, Z)``: slices below ``-OUTLIER_Z``, or below ``-PARTNER_Z`` in a multiband
    group whose Stouffer-combined z is below ``-OUTLIER_Z``."""
    finite = np.where(np.isfinite(z), z, 0.0)
    flagged = finite < -OUTLIER_Z
    if groups:
        for group in groups:
            members = [s for s in group if np.isfinite(z[:, s]).all()]
            if len(members) < 2:
                continue
            combined = finite[:, members].sum(axis=1) / math.sqrt(len(members))
            joint = combined < -OUTLIER_Z
            for s in members:
                flagged[:, s] |= joint & (finite[:, s] < -PARTNER_Z)
    return flagged


def _confidence(z: np.ndarray, loss: np.ndarray) -> float:
    """Largest over pairs of (magnitude confidence of the loss) x (significance of the z).

    The significance is a logistic in z, 0.5 at ``-PARTNER_Z`` and 0.88 at ``-OUTLIER_Z``.
    """
    ok = np.isfinite(z)
    if not ok.any():
        return 0.0
    significance = 1.0 / (1.0 + np.exp(np.clip(z[ok] + PARTNER_Z, -50, 50)))
    scores = [magnitude_confidence(float(x), PROBLEM) for x in loss[ok]]
    return float(np.clip(np.max(np.asarray(scores) * significance), 0.0, 1.0))


def _finite_min(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return round(float(finite.min()), 3) if finite.size else None
