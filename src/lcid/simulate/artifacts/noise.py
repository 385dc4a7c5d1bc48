"""Low SNR: Rician noise (magnitude of complex Gaussian) added to reach a target b0 SNR.

The magnitude is 1 / SNR, SNR being the mean b0 signal in the object mask over the noise
standard deviation per channel. The scan's own noise is estimated with DIPY's PCA estimator
(``pca_noise_estimate``, Manjón et al. 2013: the smallest eigenvalues of local patches
across volumes), median inside the mask, and the added noise makes up the difference:
σ_add = sqrt(σ_target² − σ_input²). DIPY's local-variance ``estimate_sigma`` is not used:
it counts image structure as noise (1/SNR 0.23 on a phantom made with 0.033). When the PCA
estimator cannot run (too few volumes), Immerkær's (1996) Laplacian-difference operator
on the b0s, made robust with the median absolute deviation, stands in.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lcid.dwi.gradients import b0_mask
from lcid.errors import InputError
from lcid.io.scan import DWIScan
from lcid.simulate.anatomy import mean_b0, object_mask
from lcid.simulate.magnitude import draw_magnitude


def sample(rng: np.random.Generator, scan: DWIScan, severity: str) -> dict:
    """Draw the target 1/SNR and the noise seed."""
    target = draw_magnitude(rng, "noise", severity)
    mask = object_mask(scan)
    signal = float(mean_b0(scan)[mask].mean()) if mask.any() else float(scan.data.mean())
    b0 = b0_mask(scan.bvals)
    volumes = scan.data[..., b0] if np.any(b0) else scan.data[..., :1]
    sigma_input = input_sigma(scan, mask, b0_volumes=volumes)
    sigma_target = target * signal
    if sigma_input >= sigma_target:
        raise InputError(
            f"noise: the input is already noisier (1/SNR ~ {sigma_input / signal:.3f}) than the target {target:.3f}"
        )
    return {
        "inverse_snr": round(target, 6),
        "snr": round(1 / target, 4),
        "mean_b0_signal": round(signal, 4),
        "sigma_input_estimate": round(sigma_input, 6),
        "sigma_added": round(float(np.sqrt(sigma_target**2 - sigma_input**2)), 6),
        "noise_seed": int(rng.integers(2**31)),
    }


def apply(scan: DWIScan, params: dict) -> tuple[DWIScan, dict]:
    """Add Rician noise of ``sigma_added`` to every volume; returns (scan, where)."""
    rng = np.random.default_rng(int(params["noise_seed"]))
    sigma = np.float32(params["sigma_added"])
    real = scan.data + rng.standard_normal(scan.data.shape, dtype=np.float32) * sigma
    imag = rng.standard_normal(scan.data.shape, dtype=np.float32) * sigma
    return scan.replace(data=np.sqrt(real * real + imag * imag)), {"volumes": list(range(scan.n_volumes))}


def input_sigma(scan: DWIScan, mask: np.ndarray, *, b0_volumes: np.ndarray) -> float:
    """Noise standard deviation already in the scan (signal units)."""
    from dipy.core.gradients import gradient_table
    from dipy.denoise.pca_noise_estimate import pca_noise_estimate

    norms = np.linalg.norm(scan.bvecs, axis=1, keepdims=True)
    unit = np.where(norms > 1e-6, scan.bvecs / np.maximum(norms, 1e-6), 0.0)
    try:
        gtab = gradient_table(scan.bvals, bvecs=unit, b0_threshold=50)
        with np.errstate(invalid="ignore", divide="ignore"):
            sigma = pca_noise_estimate(scan.data, gtab, correct_bias=True, smooth=2)
        value = float(np.median(sigma[mask])) if mask.any() else float(np.median(sigma))
        if np.isfinite(value) and value > 0:
            return value
    except Exception:  # noqa: BLE001 - DIPY raises assorted errors on small or odd tables
        pass
    return laplacian_sigma(b0_volumes, mask)


#: Immerkær's 3x3 kernel: the difference of two Laplacians, blind to linear trends.
_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def laplacian_sigma(volumes: np.ndarray, mask: np.ndarray) -> float:
    """Noise standard deviation of ``volumes`` ``(X, Y, Z, K)`` inside ``mask`` ``(X, Y, Z)``.

    Filters each axial plane with Immerkær's kernel (response std = 6 σ for white noise) and
    takes the median absolute response in the eroded mask / 0.6745 / 6.
    """
    inner = ndimage.binary_erosion(mask, iterations=1) if mask.sum() > 1000 else mask
    if not inner.any():
        inner = np.ones(mask.shape, bool)
    responses = [
        ndimage.convolve(volumes[..., k], _KERNEL[:, :, None], mode="nearest")[inner]
        for k in range(volumes.shape[-1])
    ]
    return float(np.median(np.abs(np.concatenate(responses))) / 0.6745 / 6.0)
