"""Training images as tensors: PneumoniaMNIST, folders of NIfTI, brain volumes from DWI series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from lcid.errors import InputError

PNEUMONIA_CLASSES = ("normal", "pneumonia")


class ImageSet(Dataset):
    """Preprocessed images ``(N, C, *S)`` in [0, 1], with optional labels ``(N,)``/covariates ``(N, k)``."""

    def __init__(self, images: torch.Tensor, *, labels: torch.Tensor | None = None, covariates: torch.Tensor | None = None) -> None:
        self.images = images.float()
        self.labels = labels
        self.covariates = covariates

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = {"image": self.images[index]}
        if self.labels is not None:
            item["condition"] = self.labels[index]
        elif self.covariates is not None:
            item["condition"] = self.covariates[index]
        return item


def load_pneumoniamnist(folder: str | Path, *, split: str = "train", size: int = 32) -> ImageSet:
    """PneumoniaMNIST ``{split}_images``/``{split}_labels`` from ``pneumoniamnist.npz`` (0 normal, 1 pneumonia)."""
    from lcid.synth.preprocess import image_transform

    path = Path(folder)
    path = path / "pneumoniamnist.npz" if path.is_dir() else path
    if not path.is_file():
        raise InputError(f"no pneumoniamnist.npz at {folder}")
    with np.load(path) as arrays:
        if f"{split}_images" not in arrays:
            raise InputError(f"{path} has no split {split!r}")
        raw = arrays[f"{split}_images"].astype(np.float32) / 255.0
        labels = arrays[f"{split}_labels"].reshape(-1).astype(np.int64)
    transform = image_transform(size=size)
    # Small images are only zero-padded: global [0, 1] scaling keeps the data set's real contrast; per-image min-max is for other sources.
    if max(raw.shape[1:]) <= size:
        images = _pad(raw, size)
    else:
        images = torch.stack([_as_tensor(transform(torch.from_numpy(im[None])), size) for im in raw])
    return ImageSet(images, labels=torch.from_numpy(labels))


def _pad(raw: np.ndarray, size: int) -> torch.Tensor:
    """Zero-pad ``(N, h, w)`` to ``(N, 1, size, size)``, centred (MONAI ``SpatialPad`` over the batch)."""
    from monai.transforms import SpatialPad
    from monai.utils import convert_to_tensor

    padded = SpatialPad(spatial_size=(size, size))(torch.from_numpy(raw))
    return convert_to_tensor(padded, track_meta=False).unsqueeze(1).float()


def _as_tensor(image, size: int) -> torch.Tensor:
    from monai.utils import convert_to_tensor

    return convert_to_tensor(image, track_meta=False).reshape(1, size, size).float()


def load_nifti_folder(
    folder: str | Path,
    *,
    voxel_mm: tuple[float, float, float],
    shape: tuple[int, int, int],
    progress: bool = True,
) -> ImageSet:
    """Every 3D NIfTI in ``folder`` (4D ones give their b0 and mean DWI when bvals sit beside them).

    Brain masks come from :func:`lcid.dwi.mask.foreground_mask`; each volume goes through
    :func:`lcid.synth.preprocess.volume_transform`.
    """
    import nibabel as nib
    from monai.utils import convert_to_tensor

    from lcid.io.nifti import find_companion, load_dwi
    from lcid.synth.preprocess import brain_volumes, volume_transform

    files = sorted(p for p in Path(folder).rglob("*") if p.name.endswith((".nii", ".nii.gz")))
    if not files:
        raise InputError(f"no NIfTI files in {folder}")
    transform = volume_transform(voxel_mm=voxel_mm, shape=shape)
    images = []
    for path in tqdm(files, desc="volumes", disable=not progress):
        if find_companion(path, ".bval") is not None:
            scan = load_dwi(path)
            items = brain_volumes(scan.data, scan.bvals, scan.affine)
        else:
            img = nib.load(str(path))
            data = np.asarray(img.dataobj, dtype=np.float32)
            if data.ndim == 4:
                data = data.mean(axis=-1)
            if data.ndim != 3:
                continue
            items = brain_volumes(data[..., None], np.zeros(1), img.affine)[:1]
        for item in items:
            images.append(convert_to_tensor(transform(item)["image"], track_meta=False))
    if not images:
        raise InputError(f"no 3D or 4D NIfTI volumes in {folder}")
    return ImageSet(torch.stack(images).float())


def split_in_two(data: ImageSet, *, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """A seeded random half/half split (for data sets without predefined splits)."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    half = max(1, len(data) // 2)

    def part(index: torch.Tensor) -> ImageSet:
        pick = lambda t: None if t is None else t[index]
        return ImageSet(data.images[index], labels=pick(data.labels), covariates=pick(data.covariates))

    return part(order[:half]), part(order[half:])


def load_dataset(kind: str, path: str | Path, *, split: str = "train", size: int = 32, voxel_mm=(2.0, 2.0, 2.0), shape=(64, 64, 64)) -> ImageSet:
    """The data set a config names: ``pneumoniamnist`` or ``nifti`` (a folder of volumes/DWI series)."""
    if kind == "pneumoniamnist":
        return load_pneumoniamnist(path, split=split, size=size)
    if kind == "nifti":
        return load_nifti_folder(path, voxel_mm=tuple(voxel_mm), shape=tuple(shape))
    raise InputError(f"unknown data kind {kind!r}: use 'pneumoniamnist' or 'nifti'")
