"""Slice statistics (lcid.vlm.dwi.slice_statistics): each artifact's signature moves its statistic."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from lcid.vlm.dwi.slice_statistics import MIN_SIDE, STATISTICS, object_mask, slice_statistics


def _head(shape: tuple[int, int] = (64, 64), *, centre: float = 0.5, noise: float = 0.01, seed: int = 0) -> np.ndarray:
    """An elliptic 'head' (bright rim, textured inside) in a noisy background."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot((yy - centre * h) / (0.32 * h), (xx - w / 2) / (0.38 * w))
    picture = np.where(r < 1, 0.6 + 0.1 * np.sin(yy / 9.0) * np.cos(xx / 11.0), 0.0)
    picture += np.where((r > 0.85) & (r < 1), 0.4, 0.0)
    return (picture + rng.normal(0, noise, shape)).astype(np.float32)


def _stat(picture: np.ndarray, name: str) -> float:
    return float(slice_statistics(picture)[STATISTICS.index(name)])


def test_names_match_values_and_degenerate_pictures_give_zeros():
    clean = _head()
    values = slice_statistics(clean)
    assert values.shape == (len(STATISTICS),) and values.dtype == np.float32 and np.isfinite(values).all()
    assert len(set(STATISTICS)) == len(STATISTICS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warnings on empty backgrounds or flat pictures
        for picture in (np.zeros((32, 32)), np.ones((32, 32)), np.zeros((MIN_SIDE - 1, 40)), np.ones((40, 40)) * 7):
            assert not slice_statistics(picture).any()
        full = np.ones((32, 32), dtype=np.float32)
        full[::2] = 0.9  # object fills the picture: no background
        assert np.isfinite(slice_statistics(full)).all()
    assert object_mask(clean / clean.max()).sum() > 0.2 * clean.size


def test_a_half_fov_ghost_raises_the_matched_statistic_along_its_axis():
    clean = _head(centre=0.5)
    ghost = clean + 0.05 * np.roll(clean, 32, axis=0)
    assert _stat(ghost, "ghost_matched_rows") > _stat(clean, "ghost_matched_rows") + 20
    assert _stat(ghost, "ghost_matched_rows") > 2 * _stat(ghost, "ghost_matched_columns")


def test_a_dark_slice_and_a_striped_slice_stand_out_as_lines():
    clean = _head()
    dark = clean.copy()
    dark[30] *= 0.05
    assert _stat(dark, "darkest_line_rows") < 0.2 and _stat(clean, "darkest_line_rows") > 0.8
    striped = clean.copy()
    striped[30] += 0.3 * np.where(np.arange(64) % 2 == 0, 1.0, -1.0)
    assert _stat(striped, "line_roughness_local_rows") > 3 * _stat(clean, "line_roughness_local_rows")


def test_interleaved_shifts_raise_the_comb_across_lines_only():
    clean = _head()
    combed = clean.copy()
    combed[1::2] = np.roll(clean[1::2], 3, axis=1)
    assert _stat(combed, "comb_ratio_rows") > 1.5 * _stat(clean, "comb_ratio_rows")
    assert _stat(combed, "comb_ratio_columns") < _stat(combed, "comb_ratio_rows")


def test_stripes_in_the_slice_make_a_spectral_peak():
    clean = _head()
    xx = np.arange(64)[None, :] + 0.4 * np.arange(64)[:, None]
    stripes = clean + 0.1 * np.cos(2 * np.pi * 0.3 * xx).astype(np.float32)
    assert _stat(stripes, "spectrum_peak_off_axis") > _stat(clean, "spectrum_peak_off_axis") + 1


def test_a_cut_top_puts_bright_object_on_the_border():
    clean = _head(centre=0.5)
    cut = _head(centre=0.2)  # the top of the ellipse lies outside the picture
    assert _stat(clean, "border_top") == 0.0 and _stat(cut, "border_top") > 0.3
    assert _stat(cut, "edge_signal_top") > 0.5 > _stat(clean, "edge_signal_top")


def test_noise_raises_the_noise_estimate():
    assert _stat(_head(noise=0.08), "noise_immerkaer") > 1.5 * _stat(_head(noise=0.01), "noise_immerkaer")


@pytest.mark.integration
def test_real_slice_statistics_are_finite():
    from lcid.vlm.image import load_image
    from tests.conftest import SHARED_DATA

    path = next(iter(sorted((SHARED_DATA / "vqa_rad").rglob("*.jpg"))), None) if (SHARED_DATA / "vqa_rad").is_dir() else None
    if path is None:
        pytest.skip("no shared picture")
    assert np.isfinite(slice_statistics(load_image(path))).all()
