"""Slice rendering as a viewer shows it: plane, orientation, physical aspect, window, PNG."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lcid.vlm.render import (
    display_spacing,
    extract_plane,
    plane_axis,
    render_slice,
    save_png,
    to_physical_aspect,
    window_limits,
)

RAS = np.diag([2.0, 2.0, 4.0, 1.0])
LAS = np.diag([-2.0, 2.0, 4.0, 1.0])


def marked_volume() -> np.ndarray:
    """Zeros with one bright voxel at the anterior (high y) and right (high x in RAS) corner."""
    vol = np.zeros((10, 12, 8), np.float32)
    vol[9, 11, 4] = 1.0
    return vol


def test_plane_axis_follows_the_affine():
    assert [plane_axis(RAS, p) for p in ("sagittal", "coronal", "axial")] == [0, 1, 2]
    swapped = np.array([[0, 0, 2.0, 0], [2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 0, 1]])  # voxel axis 0 is A
    assert plane_axis(swapped, "coronal") == 0
    with pytest.raises(ValueError):
        plane_axis(RAS, "oblique")


def test_axial_is_radiological_with_anterior_up():
    image = extract_plane(marked_volume(), RAS, plane="axial", index=4)
    assert image.shape == (12, 10)  # rows A-P, columns R-L
    row, col = np.argwhere(image == 1.0)[0]
    assert row == 0  # anterior at the top
    assert col == 0  # patient's right on the image's left


def test_flipped_x_axis_gives_the_same_picture():
    vol = marked_volume()
    flipped = vol[::-1].copy()  # the same head stored L->R
    a = extract_plane(vol, RAS, plane="axial", index=4)
    b = extract_plane(flipped, LAS, plane="axial", index=4)
    np.testing.assert_array_equal(a, b)


def test_coronal_has_superior_up_and_thick_slices_repeat():
    vol = np.zeros((10, 12, 8), np.float32)
    vol[:, 6, 7] = 1.0  # the top slice
    image = extract_plane(vol, RAS, plane="coronal", index=6)
    assert image.shape == (8, 10)
    assert image[0].all() and not image[1:].any()
    spacing = display_spacing(RAS, plane="coronal")
    assert spacing == (4.0, 2.0)
    tall = to_physical_aspect(image, spacing)
    assert tall.shape == (16, 10)


def test_window_is_the_volume_percentiles_and_a_dark_slice_stays_dark(tmp_path):
    rng = np.random.default_rng(0)
    vol = rng.uniform(100, 200, size=(16, 16, 6)).astype(np.float32)
    vol[..., 2] *= 0.2  # a dropout slice
    lo, hi = window_limits(vol)
    assert lo == pytest.approx(np.percentile(vol, 1)) and hi == pytest.approx(np.percentile(vol, 99))
    dark = render_slice(vol, RAS, plane="axial", index=2)
    bright = render_slice(vol, RAS, plane="axial", index=3)
    assert dark.dtype == np.uint8 and dark.mean() < 20 < bright.mean()
    path = save_png(bright, tmp_path / "slice.png")
    with Image.open(path) as img:
        assert img.mode == "L"
        np.testing.assert_array_equal(np.asarray(img), bright)
