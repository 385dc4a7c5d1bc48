"""The head-shape measure of 3D samples (lcid.synth.head_shape) and its place in evaluate()."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lcid.errors import InputError
from lcid.synth.head_shape import head_mask, head_shape, head_shape_metrics

torch.set_num_threads(1)
SIZE = 16


def _ellipsoid(radii: tuple[float, float, float], *, centre: tuple[float, ...] | None = None, value: float = 0.8) -> torch.Tensor:
    """A ``(1, 16, 16, 16)`` ellipsoid with a darker centre (a 'ventricle') on a zero background."""
    grid = np.stack(np.meshgrid(*[np.arange(SIZE)] * 3, indexing="ij")).astype(np.float64)
    centre = centre or ((SIZE - 1) / 2,) * 3
    r = np.sqrt(sum(((grid[i] - centre[i]) / radii[i]) ** 2 for i in range(3)))
    volume = np.where(r < 1, value, 0.0) - np.where(r < 0.3, 0.5 * value, 0.0)
    return torch.from_numpy(volume.astype(np.float32))[None]


def _reference() -> torch.Tensor:
    return torch.stack([_ellipsoid((5, 6, 5)), _ellipsoid((5.5, 6.5, 5)), _ellipsoid((4.5, 5.5, 4.5)), _ellipsoid((6, 6, 5.5))])


def _two_blobs() -> torch.Tensor:
    return _ellipsoid((2.5, 3, 3), centre=(3.5, 7.5, 7.5)) + _ellipsoid((2.5, 3, 3), centre=(11.5, 7.5, 7.5))


def test_head_mask_fills_the_dark_centre_and_finds_components():
    mask, fraction = head_mask(_ellipsoid((5, 6, 5)).numpy())
    assert fraction == 1.0 and mask[8, 8, 8]  # the dark 'ventricle' belongs to the head
    _, split = head_mask(_two_blobs().numpy())
    assert 0.4 < split < 0.6
    empty, zero = head_mask(np.zeros((1, SIZE, SIZE, SIZE)))
    assert zero == 0.0 and not empty.any()


def test_head_shape_passes_heads_and_rejects_failures():
    reference = _reference()
    candidates = torch.stack([
        _ellipsoid((5.2, 6.2, 4.8)),  # a new head inside the real range: pass
        _two_blobs(),  # two components: fail
        torch.zeros(1, SIZE, SIZE, SIZE),  # empty: fail
        torch.full((1, SIZE, SIZE, SIZE), 0.5),  # a box of haze: too large
        _ellipsoid((2, 2, 2)),  # far too small
        _ellipsoid((2.5, 7.5, 7.5)),  # head-sized volume but a flat slab: poor overlap
    ])
    result = head_shape(candidates, reference)
    assert result.passed.tolist() == [True, False, False, False, False, False]
    assert not result.in_range[3] and not result.in_range[4]
    assert result.best_dice[0] > 0.9 and result.best_dice[5] < 0.75
    assert result.best_dice[2] == 0.0


def test_metrics_report_samples_and_real_baseline():
    reference = _reference()
    real = torch.stack([_ellipsoid((5, 6.2, 5.2)), _ellipsoid((5.8, 6, 5))])
    noise = torch.rand(4, 1, SIZE, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    metrics = head_shape_metrics(noise, real, reference)
    assert metrics["head_shape_pass_real"] == 1.0 and metrics["head_shape_dice_real"] > 0.9
    assert metrics["head_shape_pass"] == 0.0 and metrics["head_shape_dice"] < metrics["head_shape_dice_real"]


def test_bad_input_is_refused():
    with pytest.raises(InputError, match="3D"):
        head_shape(torch.rand(2, 1, SIZE, SIZE), torch.rand(2, 1, SIZE, SIZE))
    with pytest.raises(InputError, match="shape"):
        head_shape(torch.rand(2, 1, 8, 8, 8), _reference())
    with pytest.raises(InputError, match="foreground"):
        head_shape(_reference(), torch.zeros(2, 1, SIZE, SIZE, SIZE))


def _tiny_model(tmp_path, data, **diffusion):
    """Both stages of a tiny 3D model trained for 2 steps on ``data`` (extra diffusion spec keys: ``diffusion``)."""
    from lcid.synth.model import load_model
    from lcid.synth.recipe import Recipe
    from lcid.synth.training import train_autoencoder, train_ldm

    train = {"steps": 2, "batch_size": 4, "checkpoint_every": 100, "log_every": 1}
    recipe = Recipe(
        out_dir=str(tmp_path),
        data={"kind": "test"},
        autoencoder={"spec": {"kind": "kl", "spatial_dims": 3, "channels": [4, 8], "latent_channels": 2, "norm_num_groups": 4}, "train": train},
        ldm={"spec": {"channels": [8, 8], "attention_levels": [False, True], "norm_num_groups": 4, "num_head_channels": 8,
                      "num_train_timesteps": 100, **diffusion}, "train": train},
    )
    train_autoencoder(recipe, data=data)
    return load_model(train_ldm(recipe, data=data))


def test_evaluate_reports_head_shape_for_3d_models(tmp_path):
    from lcid.synth.data import ImageSet
    from lcid.synth.evaluation import evaluate

    images = torch.stack([_ellipsoid((4 + 0.2 * k, 5 + 0.15 * k, 4.5)) for k in range(12)])  # train: even k, test: odd k
    model = _tiny_model(tmp_path, ImageSet(images[::2]))
    metrics = evaluate(model, ImageSet(images[::2]), ImageSet(images[1::2]), n=4, steps=2)
    assert {"head_shape_pass", "head_shape_dice", "head_shape_pass_real", "head_shape_dice_real"} <= set(metrics)
    assert metrics["head_shape_pass_real"] == 1.0 and metrics["head_shape_n"] == 4.0
    # Pre-drawn samples: all of them are scored for shape, the first n for the Fréchet distance.
    drawn = torch.cat([images[1::2][:4], torch.zeros(2, 1, SIZE, SIZE, SIZE)])
    scored = evaluate(model, ImageSet(images[::2]), ImageSet(images[1::2]), n=4, steps=2, samples=drawn)
    assert scored["head_shape_n"] == 6.0 and scored["head_shape_pass"] == pytest.approx(4 / 6)
    with pytest.raises(InputError, match="pre-drawn"):
        evaluate(model, ImageSet(images[::2]), ImageSet(images[1::2]), n=4, steps=2, samples=drawn[:2])


def test_pre_drawn_samples_of_a_class_model_are_scored_with_their_classes(tmp_path):
    from lcid.synth.data import ImageSet
    from lcid.synth.evaluation import evaluate

    images = torch.stack([_ellipsoid((4 + 0.2 * k, 5 + 0.15 * k, 4.5)) for k in range(8)])
    labels = torch.arange(8) % 2
    data = ImageSet(images[::2], labels=labels[::2])
    model = _tiny_model(tmp_path, data, conditioning="class", classes=["small", "large"])
    held_out = ImageSet(images[1::2], labels=labels[1::2])
    drawn = images[1::2].clone()  # the held-out volumes as "samples", requested as their own classes
    scored = evaluate(model, data, held_out, n=4, steps=2, samples=drawn, requested=labels[1::2])
    # so the samples' class accuracy is the classifier's accuracy on those same real volumes
    assert scored["class_accuracy"] == scored["classifier_accuracy_real"] and scored["head_shape_n"] == 4.0
    with pytest.raises(InputError, match="class each was drawn for"):
        evaluate(model, data, held_out, n=4, steps=2, samples=drawn)
