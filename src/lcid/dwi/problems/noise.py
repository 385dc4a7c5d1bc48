"""Low SNR: the b0's signal-to-noise ratio inside the object.

The noise level sigma is estimated with Marchenko-Pastur PCA (MP-PCA, Veraart et al. 2016,
NeuroImage 142:394) on patches *inside* the object, so it works whether the scanner kept,
filtered or zero-filled the background. Where a real (non-zero) background exists, PIESNO
(Koay et al. 2009, JMR 199:94) on that background is reported alongside as a cross-check.

Magnitude on the shared scale: ``1 / SNR`` of the b0, SNR = mean b0 signal in the mask / sigma.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lcid.dwi.context import CheckContext
from lcid.dwi.finding import Finding
from lcid.dwi.severity import confidence, grade
from lcid.io.scan import DWIScan

PROBLEM = "noise"
#: Patch radius (voxels) of the MP-PCA patches: 5x5x5 = 125 samples, as DIPY's default.
PATCH_RADIUS = 2
#: At most this many patches are analysed; the median of their sigma is robust with ~100.
MAX_PATCHES = 160
#: PIESNO is only trusted when at least this fraction of the background is non-zero
#: (scanners that zero-fill or mask the background leave no noise to measure there).
MIN_LIVE_BACKGROUND = 0.9


def detect(scan: DWIScan, context: CheckContext) -> Finding:
    """Grade the b0's SNR inside the foreground mask.

    Metrics: ``sigma`` (signal units), ``snr_b0``, ``snr_highest_shell`` (mean signal of the
    highest shell over sigma) with ``highest_bval``, ``sigma_background_piesno`` (NaN when
    the background is zero-filled or too small) and ``patches`` analysed.
    """
    sigmas = mppca_sigmas(scan.data, context.mask)
    if sigmas.size == 0:
        return Finding(
            problem=PROBLEM,
            applicable=False,
            metrics={"reason": "object too small or too few volumes for MP-PCA"},
        )
    sigma = float(np.median(sigmas))
    signal_b0 = float(np.mean(context.b0[context.mask]))
    snr_b0 = signal_b0 / sigma if sigma > 0 else float("inf")
    highest = max(context.shells, key=lambda s: s.bval)
    signal_high = float(np.mean([scan.data[..., v][context.mask].mean() for v in highest.volumes]))
    magnitude = 1.0 / snr_b0 if snr_b0 > 0 else float("inf")
    return Finding(
        problem=PROBLEM,
        severity=grade(magnitude, PROBLEM),
        confidence=confidence(magnitude, PROBLEM),
        metrics={
            "sigma": sigma,
            "snr_b0": snr_b0,
            "inverse_snr_b0": magnitude,
            "snr_highest_shell": signal_high / sigma if sigma > 0 else float("inf"),
            "highest_bval": float(highest.bval),
            "sigma_background_piesno": background_sigma(scan.data, context.mask),
            "patches": int(sigmas.size),
        },
        evidence={"sigma_per_patch": sigmas},
    )


def mppca_sigmas(
    data: np.ndarray,
    mask: np.ndarray,
    *,
    patch_radius: int = PATCH_RADIUS,
    max_patches: int = MAX_PATCHES,
    seed: int = 0,
) -> np.ndarray:
    """MP-PCA noise sigma of patches sampled inside the mask.

    DIPY's ``mppca`` denoises every voxel (seconds per slab); a noise level needs only a
    sample of patches, so this draws up to ``max_patches`` patch centres whose whole patch
    lies inside the mask and applies DIPY's Marchenko-Pastur classifier to each.

    Parameters
    ----------
    data
        ``(X, Y, Z, N)`` signal.
    mask
        ``(X, Y, Z)`` bool foreground.
    patch_radius
        Patch half-width in voxels (a patch is ``(2r+1)^3`` voxels); enlarged when the patch
        would hold fewer voxels than there are volumes.

    Returns
    -------
    numpy.ndarray
        Sigma (signal units) per analysed patch, shape ``(P,)``; empty when no patch fits.
    """
    from dipy.denoise.localpca import _pca_classifier

    n = data.shape[3]
    while (2 * patch_radius + 1) ** 3 < n + 1:
        patch_radius += 1
    # r erosions by the 3x3x3 cube = one erosion by the (2r+1)^3 cube, several times faster.
    inner = ndimage.binary_erosion(mask, structure=np.ones((3, 3, 3)), iterations=patch_radius, border_value=0)
    centres = np.argwhere(inner)
    if centres.size == 0 or n < 2:
        return np.empty(0)
    rng = np.random.default_rng(seed)
    if len(centres) > max_patches:
        centres = centres[np.sort(rng.choice(len(centres), max_patches, replace=False))]
    r = patch_radius
    sigmas = []
    for x, y, z in centres:
        patch = data[x - r : x + r + 1, y - r : y + r + 1, z - r : z + r + 1].reshape(-1, n).astype(np.float64)
        patch -= patch.mean(axis=0)
        eigenvalues = np.linalg.eigvalsh(patch.T @ patch / patch.shape[0])
        var, _ = _pca_classifier(eigenvalues, patch.shape[0])
        sigmas.append(np.sqrt(max(var, 0.0)))
    return np.asarray(sigmas)


def background_sigma(data: np.ndarray, mask: np.ndarray) -> float:
    """PIESNO sigma of the background (one receiver channel, N=1), or NaN when none is usable.

    Uses every fourth slice outside a 3-voxel-dilated mask; NaN when less than
    :data:`MIN_LIVE_BACKGROUND` of that background is non-zero.
    """
    from dipy.denoise.noise_estimate import piesno

    background = ~ndimage.binary_dilation(mask, iterations=3)
    values = data[background]
    if values.size < 1000 or np.mean(values[:, 0] != 0) < MIN_LIVE_BACKGROUND:
        return float("nan")
    try:
        sigma = piesno(data[:, :, ::4], N=1, return_mask=False)
    except (ValueError, RuntimeError, FloatingPointError):
        return float("nan")
    sigma = float(np.median(np.atleast_1d(sigma)))
    return sigma if np.isfinite(sigma) and sigma > 0 else float("nan")
