"""The synthetic phantom: geometry, gradients, sidecar and tissue contrast."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from lcid.dwi.gradients import shells
from lcid.simulate.phantom import LABELS, make_phantom, phantom_labels


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(shape=(40, 40, 24), seed=1)


def test_shape_gradients_and_header(phantom):
    assert phantom.shape == (40, 40, 24, 66)
    assert phantom.data.dtype == np.float32
    assert phantom.orientation == "RAS"
    assert phantom.voxel_size_mm == (2.0, 2.0, 2.0)
    centre = phantom.affine @ np.array([19.5, 19.5, 11.5, 1.0])
    assert np.allclose(centre[:3], 0.0)
    assert [s.to_dict() for s in shells(phantom.bvals, phantom.bvecs)] == [
        {"bval": 0, "count": 2},
        {"bval": 1000, "count": 32, "unique_directions": 32},
        {"bval": 2000, "count": 32, "unique_directions": 32},
    ]
    assert phantom.sidecar["PhaseEncodingDirection"] == "j-"
    assert phantom.phase_encoding_axis == 1
    assert len(phantom.sidecar["SliceTiming"]) == 24
    assert phantom.sidecar["TotalReadoutTime"] > 0


def test_custom_scheme_and_determinism():
    bvals = np.array([0, 500, 500, 3000])
    bvecs = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    a = make_phantom(shape=(16, 16, 10), bvals=bvals, bvecs=bvecs, seed=3)
    b = make_phantom(shape=(16, 16, 10), bvals=bvals, bvecs=bvecs, seed=3)
    c = make_phantom(shape=(16, 16, 10), bvals=bvals, bvecs=bvecs, seed=4)
    assert a.shape == (16, 16, 10, 4)
    assert np.array_equal(a.data, b.data)
    assert not np.array_equal(a.data, c.data)


def test_tissue_contrast():
    """FA high in bundles with the stated orientation, CSF MD ~3e-3, CSF bright on b0, dark at high b."""
    from dipy.core.gradients import gradient_table
    from dipy.reconst.dti import TensorModel

    shape = (48, 48, 30)
    scan = make_phantom(shape=shape, seed=0)
    labels = phantom_labels(shape)
    single = scan.bvals <= 1000
    fit = TensorModel(gradient_table(scan.bvals[single], bvecs=scan.bvecs[single])).fit(scan.data[..., single])
    cc, cst, csf, gm = (labels == LABELS[k] for k in ("corpus_callosum", "corticospinal", "csf", "grey_matter"))
    assert np.median(fit.fa[cc]) > 0.7 and np.median(fit.fa[cst]) > 0.7
    assert np.median(fit.fa[gm]) < 0.2
    assert np.median(np.abs(fit.evecs[cc][:, 0, 0])) > 0.95  # principal direction left-right
    assert np.median(np.abs(fit.evecs[cst][:, 2, 0])) > 0.95  # superior-inferior
    assert 2.6e-3 < np.median(fit.md[csf]) < 3.4e-3
    assert 0.6e-3 < np.median(fit.md[gm]) < 1.0e-3
    b0, high = scan.data[..., 0], scan.data[..., scan.bvals == 2000].mean(-1)
    assert b0[csf].mean() > 1.5 * b0[gm].mean()
    assert high[csf].mean() < 0.5 * high[gm].mean()
    scalp = labels == LABELS["scalp"]
    assert b0[scalp].mean() > 0.5 * b0[gm].mean() and high[scalp].mean() < 0.5 * high[gm].mean()


def test_snr_as_requested():
    clean = make_phantom(shape=(32, 32, 20), snr=0)
    noisy = make_phantom(shape=(32, 32, 20), snr=20, seed=5)
    brain = phantom_labels((32, 32, 20)) >= LABELS["grey_matter"]
    sigma = (noisy.data[..., 0] - clean.data[..., 0])[brain].std()
    assert clean.data[..., 0][brain].mean() / sigma == pytest.approx(20, rel=0.1)


def test_phantom_command(tmp_path):
    from lcid.cli import app

    result = CliRunner().invoke(app, ["phantom", "--out", str(tmp_path), "--shape", "20,20,12", "--seed", "2"])
    assert result.exit_code == 0, result.output
    image = nib.load(str(tmp_path / "dwi.nii.gz"))
    assert image.shape == (20, 20, 12, 66)
    assert nib.load(str(tmp_path / "labels.nii.gz")).shape == (20, 20, 12)
    assert json.loads((tmp_path / "dwi.json").read_text())["PhaseEncodingDirection"] == "j-"
    bad = CliRunner().invoke(app, ["phantom", "--out", str(tmp_path), "--shape", "20,20"])
    assert bad.exit_code == 2


def test_default_anatomy_is_the_standard_phantom():
    """Anatomy() reproduces the fixed phantom bit for bit (its label map's hash predates Anatomy)."""
    import hashlib

    from lcid.simulate.phantom import Anatomy

    labels = phantom_labels((64, 64, 40))
    assert np.array_equal(labels, phantom_labels((64, 64, 40), anatomy=Anatomy()))
    assert hashlib.sha256(labels.tobytes()).hexdigest().startswith("3a8df24541b84066")


def test_random_anatomy_varies_and_is_seeded():
    from lcid.simulate.phantom import Anatomy

    shape = (32, 36, 28)
    a = Anatomy.random(np.random.default_rng(3))
    assert a == Anatomy.random(np.random.default_rng(3))
    assert a != Anatomy.random(np.random.default_rng(4))
    standard = phantom_labels(shape)
    varied = phantom_labels(shape, anatomy=a)
    assert not np.array_equal(standard, varied)
    for name in ("scalp", "grey_matter", "white_matter", "csf", "corpus_callosum", "corticospinal"):
        assert (varied == LABELS[name]).any(), name
    scan = make_phantom(shape=shape, seed=0, anatomy=a, snr=0)
    assert scan.shape[:3] == shape and np.isfinite(scan.data).all()
    # ventricle volume follows the drawn ventricle size
    sizes = [Anatomy.random(np.random.default_rng(s)) for s in range(6)]
    csf = [(phantom_labels(shape, anatomy=x) == LABELS["csf"]).sum() for x in sizes]
    order = np.argsort([x.ventricle_radii[0] for x in sizes])
    assert csf[order[-1]] > csf[order[0]]
