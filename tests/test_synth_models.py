"""Synthesis: both stages in 2D and 3D, every conditioning, save/load, CLI, preprocessing."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from lcid.synth.conditioning import NULL_FILL, context_for, drop_conditions, parse_condition
from lcid.synth.data import ImageSet
from lcid.synth.model import SynthModel, load_model
from lcid.synth.recipe import Recipe
from lcid.synth.spec import DiffusionSpec
from lcid.synth.training import latent_scale_factor, train_autoencoder, train_ldm

torch.set_num_threads(1)

TINY_AE = {"channels": [4, 8], "latent_channels": 2, "num_res_blocks": 1, "norm_num_groups": 4}
TINY_UNET = {"channels": [8, 8], "attention_levels": [False, True], "norm_num_groups": 4, "num_head_channels": 8, "num_train_timesteps": 100}


def _blobs(n: int, dims: int, size: int = 16, seed: int = 0) -> ImageSet:
    """Bright discs/spheres of random radius on a zero background; label = radius > median."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(size)] * dims, indexing="ij"))
    radii = rng.uniform(2, 6, n)
    centre = (size - 1) / 2
    images = np.stack([(np.sqrt(((grid - centre) ** 2).sum(0)) < r).astype(np.float32) * 0.8 for r in radii])
    labels = torch.from_numpy((radii > np.median(radii)).astype(np.int64))
    covariates = torch.from_numpy(radii[:, None].astype(np.float32))
    return ImageSet(torch.from_numpy(images)[:, None], labels=labels, covariates=covariates)


def _recipe(tmp_path, dims: int, *, kind: str = "kl", conditioning: str = "none", steps: int = 2, adversarial: float = 0.0) -> Recipe:
    spec = dict(TINY_UNET, conditioning=conditioning)
    if conditioning == "class":
        spec["classes"] = ["small", "large"]
    if conditioning == "covariates":
        spec["covariates"] = ["radius"]
    train = {"steps": steps, "batch_size": 4, "checkpoint_every": 100, "log_every": 1}
    return Recipe(
        out_dir=str(tmp_path),
        data={"kind": "test"},
        autoencoder={"spec": dict(TINY_AE, kind=kind, spatial_dims=dims), "train": train, "adversarial_weight": adversarial},
        ldm={"spec": spec, "train": dict(train, lr=3e-3)},
    )


@pytest.mark.parametrize(
    ("dims", "kind", "conditioning", "adversarial"),
    [(2, "kl", "none", 0.0), (2, "vq", "class", 0.0), (2, "kl", "covariates", 0.5), (3, "kl", "class", 0.0), (3, "vq", "none", 0.5)],
)
def test_two_stages_train_save_and_sample(tmp_path, dims, kind, conditioning, adversarial):
    data = _blobs(8, dims)
    recipe = _recipe(tmp_path, dims, kind=kind, conditioning=conditioning, adversarial=adversarial)
    stage1 = train_autoencoder(recipe, data=data)
    assert (stage1 / "model.safetensors").is_file()
    target = train_ldm(recipe, data=data)
    model = load_model(target)
    assert model.diffusion_spec.conditioning == conditioning
    assert float(model.scale_factor) > 0 and float(model.scale_factor) != 1.0
    lines = (tmp_path / "ldm" / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and np.isfinite(json.loads(lines[-1])["loss"])
    condition = {"none": None, "class": "large", "covariates": "radius=4"}[conditioning]
    cond = parse_condition(model.diffusion_spec, condition, 2)
    images = model.sample(2, condition=cond, steps=3, guidance=2.0)
    assert images.shape == (2, 1, *([16] * dims))
    assert 0 <= float(images.min()) and float(images.max()) <= 1


def test_save_load_round_trip(tmp_path):
    model = SynthModel(image_shape=[16, 16], autoencoder=TINY_AE, diffusion=dict(TINY_UNET, conditioning="class", classes=["a", "b"]))
    model.scale_factor.fill_(0.37)
    model.save(tmp_path)
    loaded = load_model(tmp_path)
    assert float(loaded.scale_factor) == pytest.approx(0.37)
    assert loaded.config_dict() == model.config_dict()
    for (name, p), (_, q) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        torch.testing.assert_close(p, q, msg=name)
    a = model.sample(2, condition=torch.tensor([0, 1]), steps=2, seed=5)
    b = loaded.sample(2, condition=torch.tensor([0, 1]), steps=2, seed=5)
    torch.testing.assert_close(a, b)


def test_trained_sampler_differs_from_noise(tmp_path):
    data = _blobs(32, 2)
    recipe = _recipe(tmp_path, 2, steps=40)
    recipe = dataclasses.replace(recipe, autoencoder={**recipe.autoencoder, "train": {**recipe.autoencoder["train"], "lr": 1e-2, "batch_size": 8}})
    train_autoencoder(recipe, data=data)
    model = load_model(train_ldm(recipe, data=data))
    samples = model.sample(8, steps=10)
    noise = torch.rand_like(samples)

    def roughness(x: torch.Tensor) -> float:
        return float((x[..., 1:, :] - x[..., :-1, :]).abs().mean())

    # Smooth blob-like images: far less pixel-to-pixel variation than noise, dark corners.
    assert roughness(samples) < 0.5 * roughness(noise)
    assert float(samples[..., :2, :2].mean()) < 0.25


def test_latent_scale_is_inverse_std():
    mu = torch.randn(100, 3, 4, 4) * 5
    assert latent_scale_factor(mu, torch.zeros_like(mu)) == pytest.approx(0.2, rel=0.05)


def test_condition_dropout_and_parsing():
    spec = DiffusionSpec(conditioning="class", classes=("normal", "pneumonia"))
    ctx = context_for(spec, parse_condition(spec, "Pneumonia", 3))
    assert ctx.shape == (3, 1, 3) and ctx[0, 0].tolist() == [0.0, 1.0, 1.0]
    torch.manual_seed(0)
    dropped = drop_conditions(ctx.repeat(100, 1, 1), 0.5)
    nulls = (dropped == NULL_FILL).all(-1).float().mean()
    assert 0.3 < float(nulls) < 0.7
    from lcid.errors import InputError

    with pytest.raises(InputError):
        parse_condition(spec, "covid", 1)
    with pytest.raises(InputError):
        parse_condition(spec, None, 1)


def test_covariate_model_evaluation(tmp_path):
    from lcid.errors import InputError
    from lcid.synth.evaluation import evaluate

    data = _blobs(48, 2)
    recipe = _recipe(tmp_path, 2, conditioning="covariates")
    train_autoencoder(recipe, data=data)
    model = load_model(train_ldm(recipe, data=data))
    train, test = ImageSet(data.images[:32], covariates=data.covariates[:32]), ImageSet(data.images[32:], covariates=data.covariates[32:])
    metrics = evaluate(model, train, test, n=16, steps=2)
    assert {"frechet", "frechet_noise", "covariate_r_radius", "covariate_r_real_radius"} <= set(metrics)
    assert "class_accuracy" not in metrics
    # The real-data regressor reads the disc radius off real images: the ceiling is meaningful.
    assert metrics["covariate_r_real_radius"] > 0.5
    with pytest.raises(InputError, match="covariates"):
        evaluate(model, ImageSet(train.images), ImageSet(test.images), n=16, steps=2)


def test_stage_learning_rate_schedule(tmp_path):
    """``schedule``/``warmup_steps`` of a stage reach the optimizer; a bad one is refused."""
    from lcid.errors import InputError

    recipe = _recipe(tmp_path, 2, steps=3)
    recipe.autoencoder.update(schedule="cosine", warmup_steps=1)
    assert recipe.lr_schedule("autoencoder") == {"schedule": "cosine", "warmup_steps": 1}
    assert recipe.lr_schedule("ldm") == {"schedule": "constant", "warmup_steps": 0}
    train_autoencoder(recipe, data=_blobs(8, 2))
    assert (tmp_path / "autoencoder" / "model" / "model.safetensors").is_file()
    recipe.ldm.update(schedule="linear")
    with pytest.raises(InputError, match="schedule must be"):
        train_ldm(recipe, data=_blobs(8, 2))


def test_ldm_on_posterior_means(tmp_path):
    """``ldm.latents: mean`` trains stage 2 on ``mu`` only: the scale factor is 1/std of the means."""
    from lcid.errors import InputError
    from lcid.synth.training import encode_dataset

    data = _blobs(8, 2)
    recipe = _recipe(tmp_path, 2)
    stage1 = load_model(train_autoencoder(recipe, data=data))
    mu, sigma = encode_dataset(stage1, data)
    assert float(sigma.abs().max()) > 0  # a KL posterior has noise that 'mean' leaves out
    recipe.ldm.update(latents="mean")
    model = load_model(train_ldm(recipe, data=data))
    assert float(model.scale_factor) == pytest.approx(1 / float(mu.flatten().std()), rel=1e-4)
    recipe.ldm.update(latents="mode")
    with pytest.raises(InputError, match="ldm.latents"):
        train_ldm(recipe, data=data)
