"""A small CNN trained on the real data: the feature extractor of the Fréchet distance and the judge of class accuracy.

Hand-written (a few lines) because MONAI's ready classifiers (DenseNet, ResNet) are far too
big to train on a CPU inside an evaluation; it works for 2D and 3D alike.
When the real data have no labels, it learns to tell which of four flips was applied
(self-supervised, after Gidaris et al. 2018), which still yields image features.
"""

from __future__ import annotations

import torch
from torch import nn


class SmallClassifier(nn.Module):
    """Three conv blocks -> global average pool (the features, ``width * 4``) -> linear."""

    def __init__(self, *, spatial_dims: int, in_channels: int, classes: int, width: int = 16) -> None:
        super().__init__()
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        norm = nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d
        layers: list[nn.Module] = []
        channels = in_channels
        for out in (width, width * 2, width * 4):
            layers += [conv(channels, out, 3, padding=1), norm(out), nn.ReLU(), conv(out, out, 3, padding=1, stride=2), nn.ReLU()]
            channels = out
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(channels, classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, *S)`` -> ``(B, width * 4)``."""
        return self.body(images).flatten(2).mean(-1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def flip_task(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Four copies of each image (none, flip axis 0, flip axis 1, both) and their labels 0..3."""
    a, b = images.ndim - 2, images.ndim - 1
    copies = [images, images.flip(a), images.flip(b), images.flip(a).flip(b)]
    labels = torch.arange(4).repeat_interleave(images.shape[0])
    return torch.cat(copies), labels


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor | None,
    *,
    epochs: int = 8,
    batch_size: int = 64,
    seed: int = 0,
) -> SmallClassifier:
    """Fit a :class:`SmallClassifier` on real images ``(N, C, *S)`` in [0, 1] (flip task when unlabelled)."""
    torch.manual_seed(seed)
    if labels is None:
        images, labels = flip_task(images)
    classes = int(labels.max()) + 1
    model = SmallClassifier(spatial_dims=images.ndim - 2, in_channels=images.shape[1], classes=classes)
    targets = labels.long()
    return _fit(model, images, targets, nn.functional.cross_entropy, epochs=epochs, batch_size=batch_size, seed=seed)


class CovariateRegressor(nn.Module):
    """A :class:`SmallClassifier` body whose head predicts ``k`` covariates (trained on standardised values)."""

    def __init__(self, net: SmallClassifier, *, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, *S)`` -> covariates ``(B, k)`` in their own units."""
        return self.net(images) * self.std + self.mean


def train_regressor(
    images: torch.Tensor,
    covariates: torch.Tensor,
    *,
    epochs: int = 8,
    batch_size: int = 64,
    seed: int = 0,
) -> CovariateRegressor:
    """Fit a covariate regressor ``(N, C, *S) -> (N, k)`` on real images (MSE on z-scores)."""
    torch.manual_seed(seed)
    values = covariates.float().reshape(len(covariates), -1)
    mean, std = values.mean(0), values.std(0).clamp_min(1e-8)
    net = SmallClassifier(spatial_dims=images.ndim - 2, in_channels=images.shape[1], classes=values.shape[1])
    _fit(net, images, (values - mean) / std, nn.functional.mse_loss, epochs=epochs, batch_size=batch_size, seed=seed)
    return CovariateRegressor(net, mean=mean, std=std).eval()


def _fit(model: SmallClassifier, images: torch.Tensor, targets: torch.Tensor, loss_fn, *, epochs: int, batch_size: int, seed: int) -> SmallClassifier:
    """Plain AdamW epochs over shuffled mini-batches (seconds on a CPU; no checkpoints needed)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for i in range(0, len(images), batch_size):
            index = order[i : i + batch_size]
            loss = loss_fn(model(images[index]), targets[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def regress(model: CovariateRegressor, images: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
    """Predicted covariates ``(N, k)``."""
    model.eval()
    return torch.cat([model(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


@torch.no_grad()
def predict(model: SmallClassifier, images: torch.Tensor, *, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Features ``(N, F)`` and predicted classes ``(N,)``."""
    model.eval()
    feats, preds = [], []
    for i in range(0, len(images), batch_size):
        f = model.features(images[i : i + batch_size])
        feats.append(f)
        preds.append(model.head(f).argmax(1))
    return torch.cat(feats), torch.cat(preds)
