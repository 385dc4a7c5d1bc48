"""Build MONAI's generative networks and noise schedulers from the specs."""

from __future__ import annotations

import torch

from lcid.synth.spec import AutoencoderSpec, DiffusionSpec


def build_autoencoder(spec: AutoencoderSpec, *, in_channels: int = 1) -> torch.nn.Module:
    """MONAI ``AutoencoderKL`` or ``VQVAE`` for images with ``in_channels`` channels."""
    from monai.networks.nets import VQVAE, AutoencoderKL

    levels = len(spec.channels)
    if spec.kind == "kl":
        return AutoencoderKL(
            spatial_dims=spec.spatial_dims,
            in_channels=in_channels,
            out_channels=in_channels,
            channels=spec.channels,
            latent_channels=spec.latent_channels,
            num_res_blocks=spec.num_res_blocks,
            attention_levels=(False,) * (levels - 1) + (spec.attention,),
            norm_num_groups=spec.norm_num_groups,
            with_encoder_nonlocal_attn=spec.attention,
            with_decoder_nonlocal_attn=spec.attention,
        )
    # VQ-VAE: each level halves the grid like the KL encoder; the embedding is the latent.
    return VQVAE(
        spatial_dims=spec.spatial_dims,
        in_channels=in_channels,
        out_channels=in_channels,
        channels=spec.channels[1:] if levels > 1 else spec.channels,
        num_res_channels=spec.channels[1:] if levels > 1 else spec.channels,
        num_res_layers=spec.num_res_blocks,
        downsample_parameters=((2, 4, 1, 1),) * max(levels - 1, 1),
        upsample_parameters=((2, 4, 1, 1, 0),) * max(levels - 1, 1),
        num_embeddings=spec.num_embeddings,
        embedding_dim=spec.latent_channels,
    )


def build_unet(spec: DiffusionSpec, *, spatial_dims: int, latent_channels: int) -> torch.nn.Module:
    """MONAI ``DiffusionModelUNet`` predicting the noise added to latents."""
    from monai.networks.nets import DiffusionModelUNet

    conditioned = spec.conditioning != "none"
    return DiffusionModelUNet(
        spatial_dims=spatial_dims,
        in_channels=latent_channels,
        out_channels=latent_channels,
        channels=spec.channels,
        attention_levels=spec.attention_levels,
        num_res_blocks=spec.num_res_blocks,
        norm_num_groups=spec.norm_num_groups,
        num_head_channels=spec.num_head_channels,
        with_conditioning=conditioned,
        cross_attention_dim=spec.context_dim if conditioned else None,
    )


def build_scheduler(spec: DiffusionSpec, *, sampler: str = "ddpm", steps: int | None = None):
    """DDPM (training, ancestral sampling) or DDIM (fast deterministic sampling) scheduler.

    ``steps`` sets the number of sampling steps; ``None`` keeps all training steps.
    """
    from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

    kwargs = {
        "num_train_timesteps": spec.num_train_timesteps,
        "schedule": "scaled_linear_beta",
        "beta_start": spec.beta_start,
        "beta_end": spec.beta_end,
        "clip_sample": False,
    }
    if sampler == "ddpm":
        scheduler = DDPMScheduler(**kwargs)
    elif sampler == "ddim":
        scheduler = DDIMScheduler(**kwargs)
    else:
        from lcid.errors import InputError

        raise InputError(f"unknown sampler {sampler!r}: use 'ddpm' or 'ddim'")
    if steps is not None:
        scheduler.set_timesteps(num_inference_steps=int(steps))
    return scheduler
