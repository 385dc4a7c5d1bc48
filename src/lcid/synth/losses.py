"""Training losses of the two stages."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def foreground_weights(images: torch.Tensor, *, background_weight: float, threshold: float = 0.02) -> torch.Tensor:
    """Per-pixel weights: 1 on the object, ``background_weight`` where intensity <= ``threshold``.

    Down-weighting the empty background keeps the reconstruction loss about anatomy; the
    images are in [0, 1] with background 0 after preprocessing.
    """
    return torch.where(images > threshold, torch.ones_like(images), torch.full_like(images, background_weight))


def reconstruction_loss(recon: torch.Tensor, images: torch.Tensor, *, background_weight: float) -> torch.Tensor:
    """Weighted mean absolute error (L1, as in the LDM papers' stage 1)."""
    weights = foreground_weights(images, background_weight=background_weight)
    return (weights * (recon - images).abs()).sum() / weights.sum()


def structural_loss(recon: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """``1 - SSIM`` (MONAI ``SSIMLoss``, data range 1, 7-pixel Gaussian window) of images in [0, 1], 2D or 3D."""
    from monai.losses import SSIMLoss

    return SSIMLoss(spatial_dims=images.ndim - 2, data_range=1.0, kernel_type="gaussian", win_size=7)(recon, images)


def kl_loss(z_mu: torch.Tensor, z_sigma: torch.Tensor) -> torch.Tensor:
    """KL divergence of ``N(mu, sigma^2)`` from ``N(0, 1)``, summed over latent elements, batch mean."""
    dims = list(range(1, z_mu.ndim))
    kl = 0.5 * torch.sum(z_mu.pow(2) + z_sigma.pow(2) - torch.log(z_sigma.pow(2) + 1e-8) - 1, dim=dims)
    return kl.mean()


def adversarial_terms(discriminator: torch.nn.Module, recon: torch.Tensor, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares patch-GAN terms ``(generator, discriminator)`` for ONE backward pass.

    The generator term runs the discriminator with detached weights (``torch.func.functional_call``)
    so its gradient reaches only the decoder; the discriminator term sees detached images so
    its gradient reaches only the discriminator. This lets the single-optimizer shared loop
    train both players at once.
    """
    from monai.losses import PatchAdversarialLoss

    adv = PatchAdversarialLoss(criterion="least_squares")
    frozen = {name: p.detach() for name, p in discriminator.named_parameters()}
    fake_logits = torch.func.functional_call(discriminator, frozen, (recon.contiguous(),))[-1]
    generator = adv(fake_logits, target_is_real=True, for_discriminator=False)
    real_logits = discriminator(images.contiguous())[-1]
    fake_logits_d = discriminator(recon.detach().contiguous())[-1]
    disc = 0.5 * (adv(fake_logits_d, target_is_real=False, for_discriminator=True) + adv(real_logits, target_is_real=True, for_discriminator=True))
    return generator, disc


def diffusion_loss(prediction: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Mean squared error between predicted and true noise (DDPM's simple objective)."""
    return F.mse_loss(prediction.float(), noise.float())
