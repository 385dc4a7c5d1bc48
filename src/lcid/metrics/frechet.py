"""Fréchet distance between two feature sets (the formula of FID, on any feature extractor)."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to features ``a (N, D)`` and ``b (M, D)``.

    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` (Heusel et al. 2017). Only an
    "FID" when the features are Inception-v3's; lcid uses a small classifier trained on the
    real data, so values are comparable within one evaluation only.

    >>> rng = np.random.default_rng(0)
    >>> round(frechet_distance(rng.normal(size=(500, 2)), rng.normal(size=(500, 2)) + 3), 0)
    19.0
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    mu = a.mean(0) - b.mean(0)
    sa = np.atleast_2d(np.cov(a, rowvar=False))
    sb = np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():  # near-singular products are expected with few samples
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sa @ sb)
    if not np.isfinite(covmean).all():
        eps = 1e-6 * np.eye(sa.shape[0])
        covmean = linalg.sqrtm((sa + eps) @ (sb + eps))
    covmean = np.real(covmean)
    return float(mu @ mu + np.trace(sa) + np.trace(sb) - 2 * np.trace(covmean))
