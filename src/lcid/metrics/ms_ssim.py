"""Diversity of an image set: mean MS-SSIM between random pairs (lower = more diverse)."""

from __future__ import annotations

import torch


def ms_ssim_scales(shape: tuple[int, ...], *, kernel_size: int) -> tuple[float, ...]:
    """MS-SSIM weights for as many scales as the smallest side allows.

    Each scale halves the image; the coarsest must still be larger than the kernel, so
    ``2**(scales-1) * kernel_size <= min(shape)``. The standard 5 weights (Wang et al. 2003)
    are truncated and renormalised: 32² and 64³ images get 3 scales with a 5-pixel kernel.
    """
    weights = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
    scales = 1
    while scales < len(weights) and (2**scales) * kernel_size <= min(shape):
        scales += 1
    chosen = weights[:scales]
    total = sum(chosen)
    return tuple(w / total for w in chosen)


def mean_pairwise_ms_ssim(images: torch.Tensor, *, pairs: int = 200, seed: int = 0, kernel_size: int = 5) -> float:
    """Mean MS-SSIM of ``pairs`` random distinct pairs from ``images`` ``(N, C, *S)`` in [0, 1]."""
    from monai.metrics import MultiScaleSSIMMetric

    n = images.shape[0]
    if n < 2:
        raise ValueError("need at least two images for pairwise MS-SSIM")
    generator = torch.Generator().manual_seed(seed)
    first = torch.randint(0, n, (pairs,), generator=generator)
    second = (first + torch.randint(1, n, (pairs,), generator=generator)) % n
    metric = MultiScaleSSIMMetric(
        spatial_dims=images.ndim - 2,
        data_range=1.0,
        kernel_size=kernel_size,
        weights=ms_ssim_scales(tuple(images.shape[2:]), kernel_size=kernel_size),
    )
    values = metric(images[first].float(), images[second].float())
    return float(values.mean())
