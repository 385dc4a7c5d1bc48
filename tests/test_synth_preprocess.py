"""Preprocessing chains: synthetic volumes and a real shared DWI series."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from lcid.synth.preprocess import brain_volumes, image_transform, volume_transform
from tests.conftest import REAL_SERIES


def test_volume_chain_resamples_masks_and_scales():
    data = np.zeros((20, 20, 10), np.float32)
    data[5:15, 5:15, 2:8] = 100 + np.arange(10)[None, :, None]
    data[0, 0, 0] = 500  # outside the mask: must vanish
    mask = data > 0
    mask[0, 0, 0] = False
    affine = np.diag([2.0, 2.0, 4.0, 1.0])
    item = {"image": MetaTensor(torch.from_numpy(data[None]), affine=torch.from_numpy(affine)),
            "mask": MetaTensor(torch.from_numpy(mask[None].astype(np.float32)), affine=torch.from_numpy(affine))}
    out = volume_transform(voxel_mm=(2, 2, 2), shape=(16, 16, 16))(item)["image"]
    assert tuple(out.shape) == (1, 16, 16, 16)
    assert float(out.min()) == 0.0 and float(out.max()) == pytest.approx(1.0)
    assert np.allclose(np.diag(np.asarray(out.affine))[:3], 2.0)
    assert float((out > 0).float().mean()) < 0.5  # background stays 0


def test_image_chain_pads_to_square():
    image = torch.rand(1, 20, 12)
    out = image_transform(size=32)(image)
    assert tuple(out.shape) == (1, 32, 32)
    assert float(out.max()) == pytest.approx(1.0)


@pytest.mark.integration
def test_real_series_to_brain_volumes():
    from lcid.io.nifti import load_dwi

    scan = load_dwi(REAL_SERIES["philips_achieva"])
    items = brain_volumes(scan.data, scan.bvals, scan.affine)
    chain = volume_transform(voxel_mm=(3, 3, 3), shape=(64, 64, 48))
    for item in items:  # b0 and mean DWI
        out = chain(item)["image"]
        assert tuple(out.shape) == (1, 64, 64, 48)
        brain = float((out > 0).float().mean())
        assert 0.1 < brain < 0.7, brain
        assert float(out[0, 0, 0, 0]) == 0.0 and float(out.max()) == pytest.approx(1.0)
