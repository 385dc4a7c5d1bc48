"""Architecture settings of the two stages, kept as plain frozen dataclasses (saved in config.json)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from lcid.errors import InputError


@dataclass(frozen=True)
class AutoencoderSpec:
    """Stage 1: a KL autoencoder (``kind="kl"``) or a VQ-VAE (``kind="vq"``) from MONAI.

    ``channels`` has one entry per resolution level; the latent grid is the image grid
    divided by ``2 ** (len(channels) - 1)``.
    """

    kind: Literal["kl", "vq"] = "kl"
    spatial_dims: int = 2
    channels: tuple[int, ...] = (32, 64, 64)
    latent_channels: int = 3
    num_res_blocks: int = 1
    norm_num_groups: int = 32
    attention: bool = False
    num_embeddings: int = 256  # VQ codebook size


@dataclass(frozen=True)
class DiffusionSpec:
    """Stage 2: a MONAI ``DiffusionModelUNet`` on latents with a DDPM noise schedule.

    ``conditioning`` is ``"none"``, ``"class"`` (one of ``classes``) or ``"covariates"``
    (numbers named by ``covariates``); conditions enter through cross-attention.
    """

    channels: tuple[int, ...] = (64, 128)
    attention_levels: tuple[bool, ...] = (False, True)
    num_res_blocks: int = 1
    norm_num_groups: int = 32
    num_head_channels: int = 32
    num_train_timesteps: int = 1000
    beta_start: float = 0.0015
    beta_end: float = 0.0195
    conditioning: Literal["none", "class", "covariates"] = "none"
    classes: tuple[str, ...] = ()
    covariates: tuple[str, ...] = ()
    covariate_mean: tuple[float, ...] = ()
    covariate_std: tuple[float, ...] = ()
    condition_dropout: float = 0.15

    def __post_init__(self) -> None:
        if self.conditioning == "class" and len(self.classes) < 2:
            raise InputError("class conditioning needs at least two class names")
        if self.conditioning == "covariates" and not self.covariates:
            raise InputError("covariate conditioning needs covariate names")
        if len(self.channels) != len(self.attention_levels):
            raise InputError("diffusion channels and attention_levels must have the same length")

    @property
    def context_dim(self) -> int:
        """Width of the cross-attention context: one-hot or numbers, plus a 'present' flag."""
        if self.conditioning == "class":
            return len(self.classes) + 1
        if self.conditioning == "covariates":
            return len(self.covariates) + 1
        return 0


def spec_from_dict(cls: type, values: dict[str, Any] | None) -> Any:
    """Build ``cls`` from a (YAML/JSON) dictionary; lists become tuples, unknown keys are errors."""
    values = dict(values or {})
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise InputError(f"unknown {cls.__name__} settings: {', '.join(unknown)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def spec_to_dict(spec: Any) -> dict[str, Any]:
    """JSON-ready dictionary of a spec (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(spec).items()}


__all__ = ["AutoencoderSpec", "DiffusionSpec", "spec_from_dict", "spec_to_dict"]
