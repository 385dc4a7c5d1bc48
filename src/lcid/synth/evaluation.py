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
    Share of conditional samples the real-data classifier assigns to the requested class (only
    when the real training images carry class labels).
covariate_r_<name>, covariate_r_real_<name>
    Covariate-conditioned models: samples are generated with the covariates of the real test
    images (so they follow the real covariate distribution); a regressor trained on the real
    training images predicts each covariate back. ``covariate_r_<name>`` is the Pearson
    correlation between requested and predicted values on samples, ``covariate_r_real_<name>``
    the same on the real test images (the ceiling). The analogue of ``class_accuracy`` for
    continuous conditions (after the volume-vs-condition correlations of Pinaya et al. 2022).
ms_ssim_samples, ms_ssim_real
    Mean MS-SSIM between random pairs within samples / within real images (diversity; a
    much higher value for samples means mode collapse).
head_shape_pass, head_shape_dice, head_shape_pass_real, head_shape_dice_real
    3D models only (:mod:`lcid.synth.head_shape`): share of samples whose foreground is one
    head-sized connected component overlapping some real training mask (Dice >= 0.75), and the
    mean best Dice of their masks against the real training masks; ``..._real``: the same for the
    real test images (the baseline).
recon_mse, recon_psnr_db, recon_ssim
    Stage-1 reconstruction on the real test images.
"""

from __future__ import annotations

import torch

from lcid.errors import InputError
from lcid.metrics.frechet import frechet_distance
from lcid.metrics.ms_ssim import mean_pairwise_ms_ssim
from lcid.synth.classifier import predict, regress, train_classifier, train_regressor
from lcid.synth.data import ImageSet
from lcid.synth.model import SynthModel
from lcid.synth.training import evaluate_reconstruction


def generate_balanced(
    model: SynthModel,
    n: int,
    *,
    guidance: float,
    steps: int,
    seed: int,
    covariates: torch.Tensor | None = None,
    batch_size: int = 128,
    sampler: str = "ddim",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` samples and the raw condition each was asked for.

    Class-conditional models get the classes in turn; covariate-conditioned models get the rows
    of ``covariates`` ``(n, k)`` (real covariates, so samples follow the real distribution).
    """
    spec = model.diffusion_spec
    requested = None
    if spec is not None and spec.conditioning == "class":
        requested = torch.arange(n) % len(spec.classes)
    elif spec is not None and spec.conditioning == "covariates":
        if covariates is None or len(covariates) < n:
            raise InputError(f"evaluating a covariate-conditioned model needs {n} rows of real covariates ({', '.join(spec.covariates)})")
        requested = covariates[:n].float().reshape(n, -1)
    chunks = []
    for k, i in enumerate(range(0, n, batch_size)):
        cond = None if requested is None else requested[i : i + batch_size]
        m = min(batch_size, n - i)
        chunks.append(model.sample(m, condition=cond, guidance=guidance, sampler=sampler, steps=steps, seed=seed + k))
    return torch.cat(chunks), requested


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two vectors; NaN when either is constant."""
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    denominator = float(a.norm() * b.norm())
    return float((a * b).sum()) / denominator if denominator > 0 else float("nan")


def evaluate(
    model: SynthModel,
    train: ImageSet,
    test: ImageSet,
    *,
    n: int = 400,
    guidance: float = 3.0,
    steps: int = 50,
    seed: int = 0,
    sampler: str = "ddim",
    samples: torch.Tensor | None = None,
    requested: torch.Tensor | None = None,
) -> dict[str, float]:
    """All metrics of the module docstring as a flat dictionary (samples drawn with ``sampler``:
    ``"ddim"`` with ``steps`` steps, or ``"ddpm"`` with ``steps`` of the training schedule).

    ``samples``: samples drawn beforehand (unconditional or class-conditional models), at least
    ``min(n, len(test))`` of them; for a class-conditional model ``requested`` gives the class index
    each was drawn for. The Fréchet distance uses the first ``min(n, len(test))`` (as many as real
    images); class accuracy, diversity and head-shape metrics use all of them."""
    torch.manual_seed(seed)
    classifier = train_classifier(train.images, train.labels, seed=seed)
    n = min(n, len(test))
    spec = model.diffusion_spec
    covariate_model = spec is not None and spec.conditioning == "covariates"
    if covariate_model and (train.covariates is None or test.covariates is None):
        raise InputError("evaluating a covariate-conditioned model needs real images with covariates (train and test)")
    if samples is None:
        samples, requested = generate_balanced(model, n, guidance=guidance, steps=steps, seed=seed, covariates=test.covariates, sampler=sampler)
    elif covariate_model:
        raise InputError("pre-drawn samples cannot be scored for covariate-conditioned models")
    elif len(samples) < n:
        raise InputError(f"need at least {n} pre-drawn samples, got {len(samples)}")
    elif spec is not None and spec.conditioning == "class":
        if requested is None or len(requested) != len(samples):
            raise InputError("pre-drawn samples of a class-conditional model need the class each was drawn for")
    else:
        requested = None
    real = test.images[:n]
    generator = torch.Generator().manual_seed(seed)
    other = train.images[torch.randperm(len(train), generator=generator)[:n]]
    noise = torch.rand(real.shape, generator=generator)

    f_real, p_real = predict(classifier, real)
    f_other, _ = predict(classifier, other)
    f_samples, p_samples = predict(classifier, samples[:n])
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
    if requested is not None and not covariate_model and train.labels is not None:  # else the classifier's task is flips
        p_all = p_samples if len(samples) == n else predict(classifier, samples)[1]
        metrics["class_accuracy"] = float((p_all == requested).float().mean())
    if covariate_model:
        regressor = train_regressor(train.images, train.covariates, seed=seed)
        on_samples, on_real = regress(regressor, samples), regress(regressor, real)
        truth = test.covariates[:n].float().reshape(n, -1)
        for j, name in enumerate(spec.covariates):
            metrics[f"covariate_r_{name}"] = pearson(on_samples[:, j], requested[:, j])
            metrics[f"covariate_r_real_{name}"] = pearson(on_real[:, j], truth[:, j])
    if samples.ndim == 5:
        from lcid.synth.head_shape import head_shape_metrics

        metrics.update(head_shape_metrics(samples, real, train.images), head_shape_n=float(len(samples)))
    metrics.update(evaluate_reconstruction(model, test.images))
    return metrics
