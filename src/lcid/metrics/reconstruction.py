"""Reconstruction quality of an autoencoder: MSE, PSNR and SSIM on images in [0, 1]."""

from __future__ import annotations

import torch


def reconstruction_metrics(recon: torch.Tensor, images: torch.Tensor) -> dict[str, float]:
    """Mean MSE, PSNR (dB, data range 1) and SSIM over a batch ``(B, C, *S)`` of 2D or 3D images.

    SSIM uses MONAI's ``SSIMMetric`` with a 7-pixel Gaussian window (sigma 1.5), which fits
    images as small as 16 pixels.
    """
    from monai.metrics import PSNRMetric, SSIMMetric

    recon = recon.float().clamp(0, 1)
    images = images.float()
    spatial_dims = images.ndim - 2
    mse = torch.mean((recon - images) ** 2, dim=tuple(range(1, images.ndim)))
    psnr = PSNRMetric(max_val=1.0)(recon, images)
    kernel = min(7, *images.shape[2:])
    kernel -= 1 - kernel % 2  # odd
    ssim = SSIMMetric(spatial_dims=spatial_dims, data_range=1.0, win_size=kernel)(recon, images)
    return {
        "recon_mse": float(mse.mean()),
        "recon_psnr_db": float(psnr[torch.isfinite(psnr)].mean()) if torch.isfinite(psnr).any() else float("inf"),
        "recon_ssim": float(ssim.mean()),
    }
