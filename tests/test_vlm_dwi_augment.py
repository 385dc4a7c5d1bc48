"""Scanner-like picture changes for DWI training: ranges, determinism, off by default."""

from __future__ import annotations

import pytest
import torch

from lcid.errors import InputError
from lcid.vlm.data import VLMExample
from lcid.vlm.dwi.scanner_augment import (
    ScannerAugment,
    ScannerParams,
    apply_scanner_params,
    draw_scanner_params,
    rician_floor,
    scanner_augment,
)
from lcid.vlm.dwi.training import ScannerAugmented
from lcid.vlm.tokenizer import VLMTokenizer
from lcid.vlm.training import VQATrainSettings


def picture() -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    head = ((x / 0.7) ** 2 + (y / 0.85) ** 2 < 1).float() * (0.6 + 0.3 * x)  # an ellipse brighter to the right
    return head[None]


def test_neutral_params_change_nothing_and_flips_only_flip():
    image = picture()
    assert torch.equal(apply_scanner_params(image, ScannerParams()), image)
    flipped = apply_scanner_params(image, ScannerParams(flip_x=True))
    assert torch.equal(flipped, torch.flip(image, dims=[-1]))


def test_changes_stay_in_range_and_keep_the_head():
    image = picture()
    settings = ScannerAugment()
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        params = draw_scanner_params(settings, generator=generator)
        assert 0.7 <= params.gamma <= 1.5 and 0 <= params.noise <= 0.01
        assert all(abs(b) <= 0.15 for b in params.bias)
        out = apply_scanner_params(image, params, generator=generator)
        assert out.shape == image.shape and 0.0 <= float(out.min()) and float(out.max()) <= 1.0
        inside = image > 0
        # the head stays where it is (up to a flip) and far brighter than the background
        mask = inside
        if params.flip_x:
            mask = torch.flip(mask, dims=[-1])
        if params.flip_y:
            mask = torch.flip(mask, dims=[-2])
        assert float(out[mask].mean()) > float(out[~mask].mean()) + 0.3


def test_same_seed_same_pictures():
    image = picture()
    a = scanner_augment(image, ScannerAugment(), generator=torch.Generator().manual_seed(3))
    b = scanner_augment(image, ScannerAugment(), generator=torch.Generator().manual_seed(3))
    c = scanner_augment(image, ScannerAugment(), generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_recipe_section_is_checked():
    assert ScannerAugment.from_dict({"gamma": [0.8, 1.2], "flip": False}) == ScannerAugment(gamma=(0.8, 1.2), flip=False)
    with pytest.raises(InputError, match="unknown scanner_augment keys: blur"):
        ScannerAugment.from_dict({"blur": 1.0})
    with pytest.raises(InputError, match="gamma"):
        ScannerAugment.from_dict({"gamma": [1.5, 0.7]})


def test_off_by_default_and_the_wrapper_batches_like_its_base():
    assert VQATrainSettings().scanner_augment == {}
    from lcid.vlm.data import VLMDataset

    tok = VLMTokenizer.train(["question: what is wrong? answer: noise"] * 3, vocab_size=120)
    images = {"a": picture()[0].numpy(), "b": picture()[0].numpy() * 0.5}
    examples = [VLMExample("a", "question: what is wrong? answer:", "noise", ("noise",)),
                VLMExample("b", "question: what? answer:", "noise", ())]
    base = VLMDataset(examples, images, tok, image_size=32, max_length=32, head_labels=("noise",), head="multilabel")
    wrapped = ScannerAugmented(base, ScannerAugment(flip=False, max_bias=0.0, gamma=(2.0, 2.0), max_noise=0.0))
    assert len(wrapped) == 2
    item = wrapped[0]
    assert torch.allclose(item["pixels"], base[0]["pixels"] ** 2)
    assert torch.equal(item["input_ids"], base[0]["input_ids"])
    batch = wrapped.collate([wrapped[0], wrapped[1]])
    assert batch["pixels"].shape == (2, 1, 32, 32) and batch["head_target"].tolist() == [[1.0], [0.0]]


def test_noise_floor_is_rician_at_the_asked_level_and_grainier_when_coarse():
    image = torch.zeros(1, 128, 128)
    image[:, 32:96, 32:96] = 0.5  # object mean 0.5
    fine = rician_floor(image, 0.02, 1.0, generator=torch.Generator().manual_seed(0))
    coarse = rician_floor(image, 0.02, 2.0, generator=torch.Generator().manual_seed(0))
    for out in (fine, coarse):
        assert out.shape == image.shape and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
        inside, background = out[:, 40:88, 40:88], out[:, :24, :24]
        assert abs(float(inside.std()) - 0.01) < 0.002  # sigma = 2 % of the object's mean
        # Rayleigh background: mean sigma * sqrt(pi / 2), never negative
        assert abs(float(background.mean()) - 0.01 * (torch.pi / 2) ** 0.5) < 0.002

    def neighbour_correlation(x: torch.Tensor) -> float:
        a, b = x[0, 40:88, 40:87].flatten(), x[0, 40:88, 41:88].flatten()
        return float(torch.corrcoef(torch.stack([a, b]))[0, 1])

    assert neighbour_correlation(coarse) > neighbour_correlation(fine) + 0.3


def test_noise_floor_is_drawn_only_when_on():
    # recipes without a floor draw exactly what they drew before the floor existed
    a = draw_scanner_params(ScannerAugment(), generator=torch.Generator().manual_seed(5))
    assert a.floor == 0.0
    g = torch.Generator().manual_seed(5)
    b = draw_scanner_params(ScannerAugment(noise_floor=0.025, noise_grain=(1.5, 2.0)), generator=g)
    assert (a.flip_x, a.flip_y, a.bias, a.gamma, a.noise) == (b.flip_x, b.flip_y, b.bias, b.gamma, b.noise)
    assert 0 <= b.floor <= 0.025 and 1.5 <= b.grain <= 2.0
    with pytest.raises(InputError, match="noise_floor"):
        ScannerAugment.from_dict({"noise_floor": 0.05})
    with pytest.raises(InputError, match="noise_grain"):
        ScannerAugment.from_dict({"noise_grain": [0.5, 2.0]})
