"""Training of both stages through the shared loop :func:`lcid.train.fit`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, TensorDataset

from lcid.errors import InputError
from lcid.io.atomic import atomic_write_text
from lcid.synth.augment import apply, augmentation, augmented_copies
from lcid.synth.data import ImageSet, load_dataset
from lcid.synth.losses import (
    adversarial_terms,
    diffusion_loss,
    kl_loss,
    reconstruction_loss,
    structural_loss,
)
from lcid.synth.model import SynthModel, load_model
from lcid.synth.recipe import Recipe
from lcid.synth.spec import DiffusionSpec, spec_from_dict, spec_to_dict
from lcid.train import fit
from lcid.train.schedule import scheduled_adamw


class Stage1(torch.nn.Module):
    """The autoencoder with an optional patch discriminator, trained together by one optimizer."""

    def __init__(self, model: SynthModel, *, adversarial: bool) -> None:
        super().__init__()
        self.model = model
        self.discriminator = None
        if adversarial:
            from monai.networks.nets import PatchDiscriminator

            self.discriminator = PatchDiscriminator(
                spatial_dims=len(model.image_shape), num_layers_d=2, channels=32, in_channels=model.channels, out_channels=1
            )


def stage1_loss_fn(*, kind: str, kl_weight: float, background_weight: float, adversarial_weight: float, ssim_weight: float = 0.0):
    """``loss_fn(stage1, batch)`` for :func:`lcid.train.fit`.

    ``ssim_weight`` adds ``ssim_weight * (1 - SSIM)`` (MONAI ``SSIMLoss``) to the weighted L1.
    """
    ssim = structural_loss if ssim_weight > 0 else None

    def loss_fn(stage1: Stage1, batch: dict[str, torch.Tensor]):
        images = batch["image"]
        ae = stage1.model.autoencoder
        if kind == "kl":
            recon, mu, sigma = ae(images)
            reg = kl_weight * kl_loss(mu, sigma)
        else:
            recon, quantization = ae(images)
            reg = quantization.mean()
        rec = reconstruction_loss(recon, images, background_weight=background_weight)
        loss = rec + reg
        logs = {"recon_l1": float(rec.detach()), "regulariser": float(reg.detach())}
        if ssim is not None:
            structural = ssim(recon, images)
            loss = loss + ssim_weight * structural
            logs["ssim_loss"] = float(structural.detach())
        if stage1.discriminator is not None and adversarial_weight > 0:
            gen, disc = adversarial_terms(stage1.discriminator, recon, images)
            loss = loss + adversarial_weight * gen + disc
            logs.update(adv_generator=float(gen.detach()), adv_discriminator=float(disc.detach()))
        return loss, logs

    return loss_fn


def train_autoencoder(recipe: Recipe, *, data: ImageSet | None = None, held_out: ImageSet | None = None) -> Path:
    """Train stage 1 and save it to ``out_dir/autoencoder/model``; returns that folder.

    Reconstruction metrics go into the model's meta for ``held_out`` images (default: the data
    set's validation split where it has one). With a recipe ``augment`` section every training
    image is randomly augmented each time it is drawn.
    """
    data = data if data is not None else _load(recipe, "train")
    section = recipe.autoencoder
    torch.manual_seed(recipe.seed)
    model = SynthModel(
        image_shape=list(data.images.shape[2:]),
        autoencoder=dict(section.get("spec", {})),
        channels=int(data.images.shape[1]),
        meta={"data": recipe.data, "seed": recipe.seed, "config": recipe.source},
    )
    weight = float(section.get("adversarial_weight", 0.0))
    stage1 = Stage1(model, adversarial=weight > 0)
    loss_fn = stage1_loss_fn(
        kind=model.ae_spec.kind,
        kl_weight=float(section.get("kl_weight", 1e-6)),
        background_weight=float(section.get("background_weight", 0.1)),
        adversarial_weight=weight,
        ssim_weight=float(section.get("ssim_weight", 0.0)),
    )
    augment = recipe.augment_spec()
    transform = None if augment is None else augmentation(augment, spatial_dims=data.images.ndim - 2, seed=recipe.seed)
    config = recipe.train_config("autoencoder")
    optimizer, lr_schedule = scheduled_adamw(stage1, config, **recipe.lr_schedule("autoencoder"))
    metrics = fit(stage1, loss_fn, _ImagesOnly(data, transform), config, optimizer=optimizer,
                  extra_state={"lr_schedule": lr_schedule})
    held_out = held_out if held_out is not None else _held_out(recipe)
    if held_out is not None:
        metrics.update(evaluate_reconstruction(model, held_out.images))
    model.meta["stage1_metrics"] = {k: float(v) for k, v in metrics.items()}
    target = recipe.stage_dir("autoencoder") / "model"
    model.cpu().save(target)
    atomic_write_text(recipe.stage_dir("autoencoder") / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return target


@torch.no_grad()
def evaluate_reconstruction(model: SynthModel, images: torch.Tensor, *, batch_size: int = 64) -> dict[str, float]:
    """Stage-1 MSE/PSNR/SSIM on held-out images ``(N, C, *S)``."""
    from lcid.metrics.reconstruction import reconstruction_metrics

    model.eval()
    recon = torch.cat([model.reconstruct(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])
    return reconstruction_metrics(recon, images)


@torch.no_grad()
def encode_dataset(model: SynthModel, data: ImageSet, *, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Latent means and standard deviations ``(N, *latent_shape)`` (VQ: codes and zeros)."""
    model.eval()
    mus, sigmas = [], []
    for i in range(0, len(data), batch_size):
        images = data.images[i : i + batch_size]
        if model.ae_spec.kind == "kl":
            mu, sigma = model.autoencoder.encode(images)
        else:
            mu = model.autoencoder.encode_stage_2_inputs(images)
            sigma = torch.zeros_like(mu)
        mus.append(mu)
        sigmas.append(sigma)
    return torch.cat(mus), torch.cat(sigmas)


def latent_scale_factor(mu: torch.Tensor, sigma: torch.Tensor, *, seed: int = 0) -> float:
    """``1 / std`` of sampled latents, so the diffusion model sees unit-variance inputs.

    Without it the noise schedule, built for unit variance, swamps or barely touches the
    signal and samples decode to noise (Rombach et al. 2022, section 4.3 / appendix G).
    """
    generator = torch.Generator().manual_seed(seed)
    z = mu + sigma * torch.randn(mu.shape, generator=generator)
    return float(1.0 / z.flatten().std().clamp_min(1e-8))


def ldm_loss_fn(spec: DiffusionSpec, scheduler: Any, scale: float):
    """``loss_fn(unet, batch)`` with batch ``(mu, sigma[, condition])``: DDPM noise prediction."""
    from monai.inferers import DiffusionInferer

    from lcid.synth.conditioning import context_for, drop_conditions

    inferer = DiffusionInferer(scheduler)

    def loss_fn(unet: torch.nn.Module, batch: tuple[torch.Tensor, ...]):
        mu, sigma = batch[0], batch[1]
        condition = batch[2] if len(batch) > 2 else None
        latents = (mu + sigma * torch.randn_like(mu)) * scale
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, spec.num_train_timesteps, (latents.shape[0],), device=latents.device).long()
        context = context_for(spec, condition)
        if context is not None:
            context = drop_conditions(context.to(latents), spec.condition_dropout)
        prediction = inferer(inputs=latents, diffusion_model=unet, noise=noise, timesteps=timesteps, condition=context, mode="crossattn")
        return diffusion_loss(prediction, noise)

    return loss_fn


def train_ldm(recipe: Recipe, *, data: ImageSet | None = None) -> Path:
    """Train stage 2 on the saved stage-1 latents; save the full model to ``out_dir/model``."""
    from lcid.synth.networks import build_scheduler

    stage1_dir = recipe.stage_dir("autoencoder") / "model"
    if not stage1_dir.is_dir():
        raise InputError(f"no trained autoencoder at {stage1_dir}: run 'lcid train autoencoder' first")
    data = data if data is not None else _load(recipe, "train")
    stage1 = load_model(stage1_dir)
    spec = spec_from_dict(DiffusionSpec, dict(recipe.ldm.get("spec", {})))
    if spec.conditioning == "covariates":
        if data.covariates is None:
            raise InputError("covariate conditioning needs covariates in the data")
        spec = dataclasses.replace(
            spec,
            covariate_mean=tuple(float(v) for v in data.covariates.float().mean(0)),
            covariate_std=tuple(float(v) for v in data.covariates.float().std(0).clamp_min(1e-8)),
        )
    if spec.conditioning == "class" and data.labels is None:
        raise InputError("class conditioning needs labels in the data")
    latents = str(recipe.ldm.get("latents", "sample"))
    if latents not in ("sample", "mean"):
        raise InputError(f"ldm.latents must be sample or mean, not {latents!r}")
    copies = int(recipe.ldm.get("augment_copies", 0))
    if copies > 0:
        augment = recipe.augment_spec()
        if augment is None:
            raise InputError("ldm.augment_copies needs an 'augment' section in the config")
        def repeat(conditions: torch.Tensor | None) -> torch.Tensor | None:
            """The copies follow the originals copy by copy, so their conditions repeat the same way."""
            return None if conditions is None else torch.cat([conditions] * (1 + copies))

        data = ImageSet(augmented_copies(data.images, augment, copies=copies, seed=recipe.seed),
                        labels=repeat(data.labels), covariates=repeat(data.covariates))
    mu, sigma = encode_dataset(stage1, data)
    if latents == "mean":  # train on the posterior means only (no KL sampling noise in the latents)
        sigma = torch.zeros_like(sigma)
    scale = latent_scale_factor(mu, sigma, seed=recipe.seed)
    torch.manual_seed(recipe.seed)
    model = SynthModel(
        image_shape=list(stage1.image_shape),
        autoencoder=spec_to_dict(stage1.ae_spec),
        diffusion=spec_to_dict(spec),
        channels=stage1.channels,
        meta={**stage1.meta, "ldm_seed": recipe.seed},
    )
    model.autoencoder.load_state_dict(stage1.autoencoder.state_dict())
    model.scale_factor.fill_(scale)
    tensors = [mu, sigma]
    if spec.conditioning == "class":
        tensors.append(data.labels)
    elif spec.conditioning == "covariates":
        tensors.append(data.covariates.float())
    scheduler = build_scheduler(spec, sampler="ddpm")
    assert model.unet is not None
    config = recipe.train_config("ldm")
    optimizer, lr_schedule = scheduled_adamw(model.unet, config, **recipe.lr_schedule("ldm"))
    metrics = fit(model.unet, ldm_loss_fn(spec, scheduler, scale), TensorDataset(*tensors), config,
                  optimizer=optimizer, extra_state={"lr_schedule": lr_schedule})
    metrics["scale_factor"] = scale
    model.meta["ldm_metrics"] = {k: float(v) for k, v in metrics.items()}
    model.cpu().save(recipe.model_dir)
    atomic_write_text(recipe.stage_dir("ldm") / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return recipe.model_dir


def _load(recipe: Recipe, split: str) -> ImageSet:
    d = recipe.data
    return load_dataset(
        d.get("kind", "pneumoniamnist"), d["path"], split=split, size=int(d.get("size", 32)),
        voxel_mm=tuple(d.get("voxel_mm", (2.0, 2.0, 2.0))), shape=tuple(d.get("shape", (64, 64, 64))),
    )


def _held_out(recipe: Recipe) -> ImageSet | None:
    """The validation split where the data set has one (PneumoniaMNIST ``val``)."""
    if recipe.data.get("kind", "pneumoniamnist") == "pneumoniamnist":
        return _load(recipe, "val")
    return None


class _ImagesOnly(Dataset):
    """The images of an :class:`ImageSet`, each through ``transform`` (a random augmentation) if given."""

    def __init__(self, data: ImageSet, transform=None) -> None:
        self.data = data
        self.transform = transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = self.data.images[index]
        if self.transform is not None:
            image = apply(self.transform, image)
        return {"image": image}
