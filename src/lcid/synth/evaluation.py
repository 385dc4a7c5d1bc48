"""Evaluation of a generative model against real images.

Metrics
-------
frechet
    Fréchet distance between classifier features of samples and real test images. NOT an
    Inception FID: the features come from a small CNN trained on the real training data.
frechet_real_vs_real
    The same between two disjoint real sets of the same size (the floor to compare with).
frechet_noise
    The same between uniform-noise images and real images (the ceiling).
class_accuracy
    Share of conditional samples the real-data classifier assigns to the requested class.
ms_ssim_samples, ms_ssim_real
    Mean MS-SSIM between random pairs within samples / within real images (diversity; a
    much higher value for samples means mode collapse).
recon_mse, recon_psnr_db, recon_ssim
    Stage-1 reconstruction on the real test images.
"""

from __future__ import annotations

import torch

from lcid.metrics.frechet import frechet_distance
from lcid.metrics.ms_ssim import mean_pairwise_ms_ssim
from lcid.synth.classifier import predict, train_classifier
from lcid.synth.data import ImageSet
from lcid.synth.model import SynthModel
from lcid.synth.training import evaluate_reconstruction


def generate_balanced(model: SynthModel, n: int, *, guidance: float, steps: int, seed: int, batch_size: int = 128) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` samples; class-conditional models get the classes in turn. Returns images and requested classes."""
    spec = model.diffusion_spec
    requested = None
    if spec is not None and spec.conditioning == "class":
        requested = torch.arange(n) % len(spec.classes)
    elif spec is not None and spec.conditioning == "covariates":
        raise NotImplementedError("evaluation of covariate-conditioned models needs real covariates")
    chunks = []
    for k, i in enumerate(range(0, n, batch_size)):
        cond = None if requested is None else requested[i : i + batch_size]
        m = min(batch_size, n - i)
        chunks.append(model.sample(m, condition=cond, guidance=guidance, steps=steps, seed=seed + k))
    return torch.cat(chunks), requested


def evaluate(
    model: SynthModel,
    train: ImageSet,
    test: ImageSet,
    *,
    n: int = 400,
    guidance: float = 3.0,
    steps: int = 50,
    seed: int = 0,
) -> dict[str, float]:
    """All metrics of the module docstring as a flat dictionary."""
    torch.manual_seed(seed)
    classifier = train_classifier(train.images, train.labels, seed=seed)
    n = min(n, len(test))
    samples, requested = generate_balanced(model, n, guidance=guidance, steps=steps, seed=seed)
    real = test.images[:n]
    generator = torch.Generator().manual_seed(seed)
    other = train.images[torch.randperm(len(train), generator=generator)[:n]]
    noise = torch.rand(real.shape, generator=generator)

    f_real, p_real = predict(classifier, real)
    f_other, _ = predict(classifier, other)
    f_samples, p_samples = predict(classifier, samples)
    f_noise, _ = predict(classifier, noise)
    metrics: dict[str, float] = {
        "n": float(n),
        "frechet": frechet_distance(f_samples.numpy(), f_real.numpy()),
        "frechet_real_vs_real": frechet_distance(f_other.numpy(), f_real.numpy()),
        "frechet_noise": frechet_distance(f_noise.numpy(), f_real.numpy()),
        "ms_ssim_samples": mean_pairwise_ms_ssim(samples, seed=seed),
        "ms_ssim_real": mean_pairwise_ms_ssim(real, seed=seed),
    }
    if test.labels is not None:
        metrics["classifier_accuracy_real"] = float((p_real == test.labels[:n]).float().mean())
    if requested is not None:
        metrics["class_accuracy"] = float((p_samples == requested).float().mean())
    metrics.update(evaluate_reconstruction(model, test.images))
    return metrics
