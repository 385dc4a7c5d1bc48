"""Images for the model: load 2D PNG/JPEG/NIfTI slices safely, and scale to the model input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lcid.errors import InputError

#: Largest accepted image side (pixels): bigger inputs are refused rather than resized.
MAX_SIDE = 8192
_NIFTI_SUFFIXES = (".nii", ".nii.gz")


def load_image(path: str | Path, *, slice_index: int | None = None, volume: int = 0) -> np.ndarray:
    """Read a 2D image as a float array ``(H, W)``.

    PNG/JPEG (any mode; colour is converted to grey) or NIfTI. For a 3D NIfTI the axial
    slice ``slice_index`` (default the middle one) is taken; for 4D, volume ``volume``
    first.

    Raises
    ------
    InputError
        Missing or empty file, not an image, or a side larger than :data:`MAX_SIDE`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image {path} does not exist")
    if path.stat().st_size == 0:
        raise InputError(f"image {path} is an empty file")
    if path.name.lower().endswith(_NIFTI_SUFFIXES):
        return _load_nifti(path, slice_index=slice_index, volume=volume)
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_SIDE * MAX_SIDE
    try:
        with Image.open(path) as img:
            if max(img.size) > MAX_SIDE:
                raise InputError(f"image {path.name} is {img.size[0]}x{img.size[1]} px, larger than {MAX_SIDE} px")
            array = np.asarray(img.convert("L"), dtype=np.float32)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as exc:
        raise InputError(f"{path.name} is not a readable PNG/JPEG/NIfTI image ({exc.__class__.__name__})") from exc
    return check_image(array, name=path.name)


def _load_nifti(path: Path, *, slice_index: int | None, volume: int) -> np.ndarray:
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise InputError(f"{path.name} is not a readable NIfTI file ({exc.__class__.__name__})") from exc
    data = np.squeeze(data)
    if data.ndim == 4:
        if not 0 <= volume < data.shape[3]:
            raise InputError(f"--volume {volume} is outside 0..{data.shape[3] - 1}")
        data = data[..., volume]
    if data.ndim == 3:
        index = data.shape[2] // 2 if slice_index is None else slice_index
        if not 0 <= index < data.shape[2]:
            raise InputError(f"--slice {index} is outside 0..{data.shape[2] - 1}")
        data = data[:, :, index]
    if data.ndim != 2:
        raise InputError(f"{path.name} has {data.ndim} dimensions; expected a 2D, 3D or 4D image")
    # NIfTI is stored x-fastest; rotate so that anterior is up as in radiological viewers.
    return check_image(np.rot90(data.astype(np.float32)), name=path.name)


def check_image(array: np.ndarray, *, name: str = "image") -> np.ndarray:
    """Validate a 2D (or ``H x W x C``) array and return it as float32 ``(H, W)``."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        array = array[..., :3].mean(axis=2)
    if array.ndim != 2 or min(array.shape) < 2:
        raise InputError(f"{name} must be a 2D image, got shape {tuple(array.shape)}")
    if max(array.shape) > MAX_SIDE:
        raise InputError(f"{name} is {array.shape[1]}x{array.shape[0]} px, larger than {MAX_SIDE} px")
    if not np.issubdtype(array.dtype, np.number):
        raise InputError(f"{name} does not hold numbers")
    array = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return array


def to_model_input(array: np.ndarray, *, size: int) -> torch.Tensor:
    """Scale intensities robustly to [0, 1], pad to a square and resize: ``(1, size, size)``.

    Intensities are mapped from the 0.5th–99.5th percentile to [0, 1] (robust to a few
    hot pixels); the image is zero-padded to a square (aspect kept) and resized with
    antialiased bilinear interpolation.
    """
    lo, hi = np.percentile(array, [0.5, 99.5])
    scaled = np.clip((array - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(array)
    h, w = scaled.shape
    side = max(h, w)
    square = np.zeros((side, side), dtype=np.float32)
    square[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = scaled
    tensor = torch.from_numpy(square)[None, None]
    return F.interpolate(tensor, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
