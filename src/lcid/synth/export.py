"""Writing generated images: PNG (2D) or NIfTI (3D) per sample, and a contact sheet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def contact_sheet(images: torch.Tensor, path: Path, *, titles: list[str] | None = None) -> Path:
    """A grid PNG of 2D images or of the middle axial slice of 3D volumes ``(N, C, *S)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = images.shape[0]
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(_view(images[k]), cmap="gray", vmin=0, vmax=1)
            if titles:
                ax.set_title(titles[k], fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _view(image: torch.Tensor) -> np.ndarray:
    array = image[0].detach().cpu().numpy()
    if array.ndim == 3:
        array = np.rot90(array[:, :, array.shape[2] // 2])
    return array


def write_samples(images: torch.Tensor, folder: Path, *, voxel_mm: tuple[float, ...] | None = None, prefix: str = "sample") -> list[Path]:
    """``sample_000.png`` (2D, 8-bit) or ``sample_000.nii.gz`` (3D, float32, ``voxel_mm`` spacing)."""
    import nibabel as nib
    from PIL import Image

    paths = []
    for k, image in enumerate(images.detach().cpu()):
        array = image[0].numpy()
        if array.ndim == 2:
            path = folder / f"{prefix}_{k:03d}.png"
            Image.fromarray(np.round(array * 255).clip(0, 255).astype(np.uint8)).save(path)
        else:
            path = folder / f"{prefix}_{k:03d}.nii.gz"
            affine = np.diag([*(voxel_mm or (1.0, 1.0, 1.0)), 1.0])
            nib.save(nib.Nifti1Image(array.astype(np.float32), affine), str(path))
        paths.append(path)
    return paths
