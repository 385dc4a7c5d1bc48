"""Augmentation and the stage-1 SSIM term: options of the 3D recipe, on tiny 16^3 data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lcid.errors import InputError
from lcid.synth.augment import AugmentSpec, augmentation, augmented_copies
from lcid.synth.data import ImageSet
from lcid.synth.losses import structural_loss
from lcid.synth.model import load_model
from lcid.synth.recipe import Recipe
from lcid.synth.training import train_autoencoder, train_ldm

torch.set_num_threads(1)

TINY_AE = {"kind": "kl", "spatial_dims": 3, "channels": [4, 8], "latent_channels": 2, "num_res_blocks": 1, "norm_num_groups": 4}
TINY_UNET = {"channels": [8, 8], "attention_levels": [False, True], "norm_num_groups": 4, "num_head_channels": 8, "num_train_timesteps": 100}


def _boxes(n: int, size: int = 16) -> torch.Tensor:
    """Off-centre bright boxes ``(n, 1, size, size, size)`` on a zero background (left-right asymmetric)."""
    images = torch.zeros(n, 1, size, size, size)
    for i in range(n):
        images[i, 0, 2 : 7 + i % 3, 4:12, 4:12] = 0.5 + 0.1 * (i % 4)
    return images


def test_spec_from_dict_checks_values():
    assert AugmentSpec.from_dict({"gamma": [0.9, 1.1]}).gamma == (0.9, 1.1)
    with pytest.raises(InputError, match="unknown augment settings: shear"):
        AugmentSpec.from_dict({"shear": 0.1})
    with pytest.raises(InputError, match="gamma"):
        AugmentSpec.from_dict({"gamma": [1.5, 0.5]})
    with pytest.raises(InputError, match="probability"):
        AugmentSpec.from_dict({"flip_lr": 2})


def test_copies_are_seeded_in_range_and_differ():
    images = _boxes(3)
    spec = AugmentSpec(prob=1.0, flip_lr=1.0)
    a = augmented_copies(images, spec, copies=2, seed=1)
    b = augmented_copies(images, spec, copies=2, seed=1)
    assert a.shape == (9, 1, 16, 16, 16)
    assert torch.equal(a, b)
    assert torch.equal(a[:3], images)  # the originals come first, untouched
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    assert not torch.allclose(a[3:6], images, atol=1e-3)
    # flip_lr=1 mirrors axis 0: the bright box moves to the other side
    flip_only = augmentation(AugmentSpec(prob=0.0, flip_lr=1.0), spatial_dims=3)
    out = flip_only({"image": images[0]})["image"]
    assert torch.allclose(torch.as_tensor(out), torch.flip(images[0], dims=[1]))


def test_ssim_term_is_zero_for_identical_images():
    images = _boxes(2)
    assert float(structural_loss(images, images)) == pytest.approx(0.0, abs=1e-5)
    assert float(structural_loss(torch.zeros_like(images), images)) > 0.5


def test_recipe_with_augmentation_trains_both_stages(tmp_path):
    data = ImageSet(_boxes(4))
    train = {"steps": 2, "batch_size": 2, "checkpoint_every": 100, "log_every": 1}
    recipe = Recipe(
        out_dir=str(tmp_path),
        data={"kind": "test"},
        autoencoder={"spec": TINY_AE, "ssim_weight": 0.5, "train": train},
        ldm={"spec": TINY_UNET, "augment_copies": 2, "train": train},
        augment={"rotate_deg": 10, "scale": 0.1},
    )
    stage1 = train_autoencoder(recipe, data=data, held_out=ImageSet(_boxes(2)))
    logged = json.loads((tmp_path / "autoencoder" / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert "ssim_loss" in logged and np.isfinite(logged["ssim_loss"])
    assert "recon_ssim" in load_model(stage1).meta["stage1_metrics"]
    model = load_model(train_ldm(recipe, data=data))
    assert model.sample(1, steps=2).shape == (1, 1, 16, 16, 16)


def test_augment_copies_need_an_augment_section(tmp_path):
    train = {"steps": 1, "batch_size": 2, "checkpoint_every": 100, "log_every": 1}
    recipe = Recipe(out_dir=str(tmp_path), data={"kind": "test"}, autoencoder={"spec": TINY_AE, "train": train},
                    ldm={"spec": TINY_UNET, "augment_copies": 1, "train": train})
    data = ImageSet(_boxes(2))
    train_autoencoder(recipe, data=data)
    with pytest.raises(InputError, match="augment"):
        train_ldm(recipe, data=data)


def test_recipe_file_accepts_augment(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("out_dir: x\ndata: {kind: nifti, path: y}\nautoencoder: {}\naugment: {rotate_deg: 5}\n")
    assert Recipe.load(path).augment_spec() == AugmentSpec(rotate_deg=5)
    path.write_text("out_dir: x\ndata: {kind: nifti, path: y}\nautoencoder: {}\n")
    assert Recipe.load(path).augment_spec() is None


def test_evaluate_with_either_sampler(tmp_path):
    """``evaluate`` draws its samples with DDIM (default) or DDPM; both give every metric, finite."""
    from lcid.synth.evaluation import evaluate

    train_cfg = {"steps": 2, "batch_size": 4, "checkpoint_every": 100, "log_every": 1}
    recipe = Recipe(out_dir=str(tmp_path), data={"kind": "test"}, autoencoder={"spec": TINY_AE, "train": train_cfg},
                    ldm={"spec": TINY_UNET, "train": train_cfg})
    data = ImageSet(_boxes(8))
    train_autoencoder(recipe, data=data)
    model = load_model(train_ldm(recipe, data=data))
    train, test = ImageSet(data.images[:4]), ImageSet(data.images[4:])
    ddim = evaluate(model, train, test, n=2, steps=3)
    ddpm = evaluate(model, train, test, n=2, steps=3, sampler="ddpm")
    assert set(ddim) == set(ddpm)
    assert all(np.isfinite(v) for v in ddpm.values())
    assert ddim["frechet"] != ddpm["frechet"]
    with pytest.raises(InputError, match="sampler"):
        evaluate(model, train, test, n=2, steps=3, sampler="euler")


def test_augment_copies_keep_class_labels_for_a_conditional_ldm(tmp_path, monkeypatch):
    from lcid.synth import training

    data = ImageSet(_boxes(4), labels=torch.tensor([0, 1, 0, 1]))
    train = {"steps": 2, "batch_size": 2, "checkpoint_every": 100, "log_every": 1}
    spec = {**TINY_UNET, "conditioning": "class", "classes": ["real", "phantom"]}
    recipe = Recipe(out_dir=str(tmp_path), data={"kind": "test"}, autoencoder={"spec": TINY_AE, "train": train},
                    ldm={"spec": spec, "augment_copies": 2, "train": train}, augment={"rotate_deg": 10})
    train_autoencoder(recipe, data=data)
    seen = {}
    fit = training.fit

    def recording_fit(model, loss_fn, dataset, *args, **kwargs):
        seen["labels"] = dataset.tensors[2]
        return fit(model, loss_fn, dataset, *args, **kwargs)

    monkeypatch.setattr(training, "fit", recording_fit)
    model = load_model(train_ldm(recipe, data=data))
    # 4 originals + 2 copies of each, in copy order: the labels repeat 3 times
    assert seen["labels"].tolist() == [0, 1, 0, 1] * 3
    assert model.sample(2, condition=torch.tensor([0, 1]), steps=2).shape == (2, 1, 16, 16, 16)
