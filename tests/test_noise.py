"""The noise detector: MP-PCA sigma inside the object and the b0's SNR."""

from __future__ import annotations

import numpy as np
import pytest

from lcid.dwi.context import build_context
from lcid.dwi.problems import noise
from tests.conftest import REAL_SERIES, make_scan
from tests.conftest import real_scan as _real


@pytest.mark.parametrize(
    ("level", "severity"),
    [(0.01, "none"), (0.03, "none"), (0.1, "moderate"), (0.3, "severe")],
)
def test_sigma_and_severity_follow_the_injected_noise(level, severity):
    scan = make_scan(noise=level, seed=1)
    finding = noise.detect(scan, build_context(scan))
    sigma_true = 1000.0 * level
    assert finding.metrics["sigma"] == pytest.approx(sigma_true, rel=0.2)
    assert finding.severity == severity
    assert finding.metrics["snr_highest_shell"] < finding.metrics["snr_b0"]


def test_zero_filled_background_gives_the_same_sigma():
    scan = make_scan(noise=0.05, seed=2)
    context = build_context(scan)
    masked = scan.replace(data=scan.data * context.mask[..., None])
    with_background = noise.detect(scan, context).metrics
    zero_filled = noise.detect(masked, context).metrics
    assert zero_filled["sigma"] == pytest.approx(with_background["sigma"], rel=0.05)
    assert np.isnan(zero_filled["sigma_background_piesno"])


def test_confidence_rises_with_noise():
    low, high = (noise.detect(s, build_context(s)) for s in (make_scan(noise=0.02), make_scan(noise=0.15)))
    assert low.confidence < 0.5 < high.confidence
    assert high.detected and not low.detected


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(REAL_SERIES))
def test_real_series(name):
    scan, context = _real(name)
    finding = noise.detect(scan, context)
    m = finding.metrics
    print(name, {k: m[k] for k in ("sigma", "snr_b0", "snr_highest_shell", "sigma_background_piesno")})
    assert finding.applicable
    assert 3 < m["snr_b0"] < 1000
    assert m["snr_highest_shell"] < m["snr_b0"]
