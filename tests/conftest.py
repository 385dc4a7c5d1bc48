"""Shared fixtures: tiny synthetic scans with known answers, and the real shared data."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from lcid.io.scan import DWIScan

SHARED_DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()
DWI_DIR = SHARED_DATA / "dwi"

#: One image per real series (the phantom's first part stands for the phantom).
REAL_SERIES = {
    "siemens_ap": DWI_DIR / "siemens_prisma_xa30_ap_pa_20dir" / "DWI_dir80_AP.nii.gz",
    "siemens_pa": DWI_DIR / "siemens_prisma_xa30_ap_pa_20dir" / "DWI_dir80_PA.nii.gz",
    "philips_elition": DWI_DIR / "philips_elition_16dir_b1000" / "2201_WIP_DTI_S2MB2.nii.gz",
    "philips_achieva": DWI_DIR / "philips_achieva_dstream_15dir_b2000" / "WIP_dti_ax_601.nii.gz",
    "phantom": DWI_DIR / "phantom_water_multishell" / "water_lte_part1.nii.gz",
}


@lru_cache(maxsize=2)
def real_scan(name: str):
    """``(scan, context)`` of a shared real series, loaded once per test process.

    The same scan object is returned on every call, so detectors that cache work per scan
    (the motion/eddy alignment) share it.
    """
    from lcid.dwi.context import build_context
    from lcid.io.nifti import load_dwi

    scan = load_dwi(REAL_SERIES[name])
    return scan, build_context(scan)


def pytest_collection_modifyitems(config, items):
    """Skip integration tests with a clear reason when ../shared/data is absent."""
    if DWI_DIR.is_dir():
        return
    skip = pytest.mark.skip(reason=f"real data not found at {SHARED_DATA}")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)


def fibonacci_directions(n: int) -> np.ndarray:
    """``n`` unit vectors spread over a hemisphere-symmetric sphere."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - i / n)  # upper hemisphere: antipodal duplicates avoided
    theta = np.pi * (1 + 5**0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)


def make_scan(
    *,
    shape: tuple[int, int, int] = (32, 32, 20),
    n_b0: int = 2,
    n_dirs: int = 30,
    bval: float = 1000.0,
    voxel_mm: tuple[float, float, float] = (2.0, 2.0, 2.0),
    noise: float = 0.01,
    seed: int = 0,
    pe: str = "j-",
) -> DWIScan:
    """A clean synthetic head: an ellipsoid 'brain' with anisotropic diffusion in a band.

    Signal S = S0 * exp(-b * D(g)); ``D`` is 0.8e-3 mm²/s isotropic with a band of
    fibres along x (D‖ 1.7e-3, D⊥ 0.3e-3). The brain fills most of the field of view with
    a few empty voxels at every edge. Rician-like noise of relative size ``noise``.
    """
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"), axis=-1)
    r = np.sqrt(((grid / np.array([0.8, 0.85, 0.8])) ** 2).sum(-1))
    brain = r < 1.0
    s0 = np.where(brain, 1000.0 * (1.0 - 0.3 * r**2), 0.0)
    band = brain & (np.abs(grid[..., 1]) < 0.2)
    dirs = fibonacci_directions(n_dirs)
    bvecs = np.concatenate([np.zeros((n_b0, 3)), dirs])
    bvals = np.concatenate([np.zeros(n_b0), np.full(n_dirs, bval)])
    data = np.empty(shape + (len(bvals),), np.float32)
    for v, (b, g) in enumerate(zip(bvals, bvecs, strict=True)):
        adc = np.full(shape, 0.8e-3)
        adc[band] = 0.3e-3 + 1.4e-3 * g[0] ** 2
        clean = s0 * np.exp(-b * adc)
        real = clean + rng.normal(0, noise * 1000, shape)
        imag = rng.normal(0, noise * 1000, shape)
        data[..., v] = np.sqrt(real**2 + imag**2)
    affine = np.diag([-voxel_mm[0], voxel_mm[1], voxel_mm[2], 1.0])
    affine[:3, 3] = -np.array(shape) * np.array(voxel_mm) / 2 * np.array([-1, 1, 1])
    return DWIScan(data=data, affine=affine, bvals=bvals, bvecs=bvecs, sidecar={"PhaseEncodingDirection": pe})


@pytest.fixture
def synthetic_scan() -> DWIScan:
    """A clean 32x32x20 scan with 2 b0 + 30 directions at b=1000."""
    return make_scan()


@pytest.fixture
def scan_factory():
    """The :func:`make_scan` factory, for tests that need other shapes or gradients."""
    return make_scan
