"""The spike detector: isolated k-space outliers in (volume, slice) pairs."""

from __future__ import annotations

import numpy as np
import pytest

from lcid.dwi.context import build_context
from lcid.dwi.problems import spikes
from lcid.io.scan import DWIScan
from tests.conftest import REAL_SERIES, make_scan
from tests.conftest import real_scan as _real


def _with_spikes(scan: DWIScan, pairs, *, strength: float = 0.5, k=(9, 6)) -> DWIScan:
    """Add a bright k-space point (``strength`` x the slice's DC) to each (volume, slice)."""
    data = scan.data.copy()
    for volume, z in pairs:
        spectrum = np.fft.fft2(data[:, :, z, volume])
        spectrum[k] += strength * np.abs(spectrum[0, 0])
        data[:, :, z, volume] = np.abs(np.fft.ifft2(spectrum))
    return scan.replace(data=data)


def test_clean_scan_has_no_spikes(synthetic_scan):
    finding = spikes.detect(synthetic_scan, build_context(synthetic_scan))
    assert finding.severity == "none" and finding.metrics["spiked_pairs"] == 0
    assert finding.metrics["max_spike_ratio"] < spikes.SPIKE_RATIO


def test_spiked_slices_are_found_exactly():
    pairs = [(3, 5), (3, 6), (10, 12), (20, 8), (31, 15)]
    scan = _with_spikes(make_scan(noise=0.05), pairs)
    finding = spikes.detect(scan, build_context(scan))
    assert sorted(map(tuple, finding.where["pairs"])) == sorted(pairs)
    assert finding.metrics["spiked_fraction"] == pytest.approx(5 / (32 * 20))
    assert finding.severity == "moderate"  # 5 of 640 slices: 0.8%
    assert finding.where["volumes"] == [3, 10, 20, 31]


def test_weak_spike_below_noise_is_not_reported():
    scan = _with_spikes(make_scan(noise=0.05), [(4, 10)], strength=1e-3)
    assert spikes.detect(scan, build_context(scan)).metrics["spiked_pairs"] == 0


def test_score_map_shape(synthetic_scan):
    finding = spikes.detect(synthetic_scan, build_context(synthetic_scan))
    assert finding.evidence["score"].shape == (synthetic_scan.n_volumes, synthetic_scan.shape[2])


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(REAL_SERIES))
def test_real_series(name):
    scan, context = _real(name)
    finding = spikes.detect(scan, context)
    print(name, finding.severity, finding.metrics)
    assert finding.severity == "none"
