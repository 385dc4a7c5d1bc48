"""Finding the diffusion runs of a BIDS data set."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lcid.errors import InputError

_ENTITY = re.compile(r"(?P<key>[a-zA-Z]+)-(?P<value>[a-zA-Z0-9]+)")


@dataclass(frozen=True)
class BidsRun:
    """One ``dwi`` run: its image and the BIDS entities parsed from the name."""

    image: Path
    entities: dict[str, str]

    @property
    def label(self) -> str:
        """``sub-01_ses-1_dir-AP_run-1`` style label, without the suffix."""
        return self.image.name.split(".nii")[0].removesuffix("_dwi")


def is_bids_dataset(folder: Path) -> bool:
    """A BIDS data set has ``dataset_description.json`` or ``sub-*`` folders."""
    return (folder / "dataset_description.json").is_file() or any(folder.glob("sub-*/"))


def find_dwi_runs(root: str | Path) -> list[BidsRun]:
    """Every ``sub-*/[ses-*/]dwi/*_dwi.nii[.gz]`` under ``root``, sorted by path.

    Raises
    ------
    InputError
        When the data set holds no dwi run.
    """
    root = Path(root)
    images = sorted({*root.glob("sub-*/dwi/*_dwi.nii*"), *root.glob("sub-*/ses-*/dwi/*_dwi.nii*")})
    runs = [BidsRun(image=p, entities=parse_entities(p.name)) for p in images]
    if not runs:
        raise InputError(f"{root.name}: BIDS data set without any sub-*/dwi/*_dwi.nii.gz run")
    return runs


def parse_entities(name: str) -> dict[str, str]:
    """Key-value entities of a BIDS file name.

    >>> parse_entities("sub-01_ses-2_dir-AP_dwi.nii.gz")
    {'sub': '01', 'ses': '2', 'dir': 'AP'}
    """
    stem = name.split(".")[0]
    return {m["key"]: m["value"] for m in _ENTITY.finditer(stem)}
