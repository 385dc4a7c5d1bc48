"""The N/2 ghosting detector: MRIQC-style ghost-to-signal ratio along phase encoding."""

from __future__ import annotations

import numpy as np
import pytest

from lcid.dwi.context import build_context
from lcid.dwi.problems import ghosting
from lcid.io.scan import DWIScan
from tests.conftest import REAL_SERIES, make_scan
from tests.conftest import real_scan as _real


def _padded(pe: str = "j") -> DWIScan:
    """A head in a field of view twice its size, so a FOV/2 ghost falls outside it."""
    scan = make_scan(shape=(32, 32, 10), n_dirs=6, noise=0.01, pe=pe)
    data = np.pad(scan.data, ((16, 16), (16, 16), (0, 0), (0, 0)))
    return scan.replace(data=data)


def _ghosted(scan: DWIScan, amplitude: float, axis: int) -> DWIScan:
    shift = scan.data.shape[axis] // 2
    return scan.replace(data=scan.data + amplitude * np.roll(scan.data, shift, axis=axis))


def test_clean_scan_has_no_ghost():
    scan = _padded()
    finding = ghosting.detect(scan, build_context(scan))
    assert finding.severity == "none"
    assert abs(finding.metrics["gsr_b0"]) < 0.01


@pytest.mark.parametrize(("amplitude", "severity"), [(0.04, "mild"), (0.08, "moderate")])
def test_ghost_along_pe_is_measured(amplitude, severity):
    scan = _ghosted(_padded(), amplitude, axis=1)
    finding = ghosting.detect(scan, build_context(scan))
    assert finding.metrics["gsr_b0"] == pytest.approx(amplitude, rel=0.3)
    assert finding.severity == severity
    assert 0 in finding.where["volumes"]


def test_ghost_is_looked_for_along_the_sidecar_pe_axis():
    along_x = _ghosted(_padded(pe="j"), 0.08, axis=0)
    assert ghosting.detect(along_x, build_context(along_x)).severity == "none"
    along_x_declared = along_x.replace(sidecar={"PhaseEncodingDirection": "i"})
    finding = ghosting.detect(along_x_declared, build_context(along_x_declared))
    assert finding.metrics["pe_axis"] == 0 and finding.detected


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(REAL_SERIES))
def test_real_series(name):
    scan, context = _real(name)
    finding = ghosting.detect(scan, context)
    print(name, finding.severity, finding.metrics)
    assert finding.applicable
    assert finding.metrics["gsr_b0"] < 0.03  # no documented ghosting in the shared series
