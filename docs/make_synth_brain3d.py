"""The small 3D run of docs/synth.md: train configs/synth/brain3d.yaml, sample, score, draw mid-slices.

Run from the repository root after ``docs/make_synth_brain3d.sh`` (which builds runs/brain3d-data)::

    .venv/bin/python docs/make_synth_brain3d.py [--images-cache runs/brain3d-images.pt]

The volumes are loaded and preprocessed once (MONAI chain of lcid.synth.preprocess, minutes on a
CPU) and handed to both training stages (``train_autoencoder``/``train_ldm`` with ``data=``, the
functions behind ``lcid train``). Writes docs/img/synth_brain3d.png and prints the metrics as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from lcid.synth.data import ImageSet, load_dataset, split_in_two
from lcid.synth.evaluation import evaluate
from lcid.synth.model import load_model
from lcid.synth.recipe import Recipe
from lcid.synth.training import train_autoencoder, train_ldm

ROOT = Path(__file__).resolve().parents[1]
FIGURE = ROOT / "docs" / "img" / "synth_brain3d.png"


def mid_slices(volume: np.ndarray) -> list[np.ndarray]:
    """Axial, coronal and sagittal middle slices of an RAS volume ``(X, Y, Z)``, displayed upright."""
    x, y, z = (s // 2 for s in volume.shape)
    return [np.rot90(volume[:, :, z]), np.rot90(volume[:, y, :]), np.rot90(volume[x, :, :])]


def figure(samples: torch.Tensor, real: torch.Tensor, path: Path) -> None:
    """Rows of real and generated volumes, three mid-slices each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    volumes = [("real", v) for v in real] + [("sample", v) for v in samples]
    fig, axes = plt.subplots(len(volumes), 3, figsize=(4.2, 1.45 * len(volumes)), squeeze=False)
    for row, (name, volume) in enumerate(volumes):
        for col, (view, image) in enumerate(zip(("axial", "coronal", "sagittal"), mid_slices(volume[0].numpy()), strict=True)):
            ax = axes[row, col]
            ax.imshow(image, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(view, fontsize=8)
            if col == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "synth" / "brain3d.yaml")
    parser.add_argument("--images-cache", type=Path, default=None, help="Save/reuse the preprocessed volumes here.")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n", type=int, default=6, help="Samples to draw for the figure.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipe = Recipe.load(args.config)
    d = recipe.data
    if args.images_cache is not None and args.images_cache.is_file():
        data = ImageSet(torch.load(args.images_cache))
    else:
        data = load_dataset("nifti", d["path"], voxel_mm=tuple(d["voxel_mm"]), shape=tuple(d["shape"]))
        if args.images_cache is not None:
            torch.save(data.images, args.images_cache)
    print(f"{len(data)} volumes {tuple(data.images.shape[2:])}")
    train_autoencoder(recipe, data=data)
    model = load_model(train_ldm(recipe, data=data))
    samples = model.sample(args.n, steps=50, seed=recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    real = data.images[torch.randperm(len(data), generator=generator)[:3]]
    figure(samples[:4], real, FIGURE)
    train, test = split_in_two(data, seed=recipe.seed)
    metrics = evaluate(model, train, test, n=len(test), steps=50, seed=recipe.seed)
    metrics["volumes"] = float(len(data))
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
