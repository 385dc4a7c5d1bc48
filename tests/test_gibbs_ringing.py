"""The Gibbs-ringing detector: truncated versus windowed k-space acquisitions of one object."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from lcid.dwi.context import build_context
from lcid.dwi.problems import gibbs_ringing
from tests.conftest import REAL_SERIES, make_scan
from tests.conftest import real_scan as _real


@lru_cache(maxsize=1)
def _high_resolution_object() -> np.ndarray:
    return make_scan(shape=(128, 128, 8), n_b0=1, n_dirs=6, noise=0.0).data[..., 0]


def _acquired(*, windowed: bool, noise: float = 0.02, factor: int = 4):
    """The object 'acquired' at 1/factor resolution: the central k-space, without zero filling;
    a Hann window suppresses ringing, a plain cut rings (9 % overshoot at a sharp step)."""
    image = _high_resolution_object()
    spectrum = np.fft.fftshift(np.fft.fft2(image, axes=(0, 1)), axes=(0, 1))
    nx, ny = image.shape[:2]
    mx, my = nx // factor, ny // factor
    kept = spectrum[nx // 2 - mx // 2 : nx // 2 + mx // 2, ny // 2 - my // 2 : ny // 2 + my // 2]
    if windowed:
        kept = kept * np.outer(np.hanning(mx + 2)[1:-1], np.hanning(my + 2)[1:-1])[..., None]
    low = np.fft.ifft2(np.fft.ifftshift(kept, axes=(0, 1)), axes=(0, 1)) / factor**2
    rng = np.random.default_rng(0)
    b0 = np.abs(low + rng.normal(0, noise * 1000, low.shape) + 1j * rng.normal(0, noise * 1000, low.shape))
    scan = make_scan(shape=b0.shape, n_b0=1, n_dirs=6)
    data = scan.data.copy()
    data[..., 0] = b0
    scan = scan.replace(data=data)
    return scan, build_context(scan)


@pytest.mark.parametrize("noise", [0.01, 0.05])
def test_truncated_acquisition_rings_and_windowed_does_not(noise):
    truncated = gibbs_ringing.detect(*_acquired(windowed=False, noise=noise))
    windowed = gibbs_ringing.detect(*_acquired(windowed=True, noise=noise))
    # The 2-voxel edge band's RMS averages the decaying lobes: a plain cut of this object
    # reads about half the 9 % Gibbs overshoot; a Hann-windowed one close to zero.
    assert 0.03 <= truncated.metrics["ringing_amplitude"] < 0.15
    assert windowed.metrics["ringing_amplitude"] < 0.02
    assert windowed.severity == "none"
    assert truncated.confidence > 10 * windowed.confidence


def test_evidence_holds_the_removed_ringing():
    scan, context = _acquired(windowed=False)
    finding = gibbs_ringing.detect(scan, context)
    assert finding.evidence["ringing"].shape == finding.evidence["image"].shape
    assert len(finding.metrics["slices_analysed"]) <= gibbs_ringing.N_SLICES


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(REAL_SERIES))
def test_real_series(name):
    scan, context = _real(name)
    finding = gibbs_ringing.detect(scan, context)
    print(name, finding.severity, finding.metrics)
    assert finding.applicable
    assert 0.0 <= finding.metrics["ringing_amplitude"] < 0.3
