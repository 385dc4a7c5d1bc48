"""A training recipe: the YAML file given to ``lcid train autoencoder|ldm --config``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lcid.errors import InputError
from lcid.train.config import TrainConfig


@dataclass(frozen=True)
class Recipe:
    """Data, architecture and training settings of both stages.

    YAML layout::

        out_dir: runs/pneumoniamnist
        seed: 0
        data: {kind: pneumoniamnist, path: /data/pneumoniamnist, size: 32}
        autoencoder: {spec: {...}, kl_weight: 1e-6, background_weight: 0.1,
                      adversarial_weight: 0.0, ssim_weight: 0.0, train: {steps: 1500, batch_size: 64},
                      schedule: constant, warmup_steps: 0}
        ldm: {spec: {...}, augment_copies: 0, train: {steps: 3000, batch_size: 64}}
        augment: {rotate_deg: 8, scale: 0.08, flip_lr: 0.5, gamma: [0.8, 1.25]}  # optional

    ``augment`` (see :class:`lcid.synth.augment.AugmentSpec`) switches on random augmentation of
    stage-1 training images; ``ldm.augment_copies`` adds that many augmented copies of each image
    to the stage-2 latents; ``ldm.latents`` is ``sample`` (default: ``mu + sigma * noise`` of the KL
    posterior, drawn anew each step) or ``mean`` (``mu`` only). ``schedule`` (``constant`` or
    ``cosine``) and ``warmup_steps`` of a stage set its learning-rate schedule
    (:mod:`lcid.train.schedule`).
    """

    out_dir: str
    data: dict[str, Any]
    autoencoder: dict[str, Any]
    ldm: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    augment: dict[str, Any] | None = None
    source: str = ""

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        import yaml

        path = Path(path)
        if not path.is_file():
            raise InputError(f"config file not found: {path}")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"config {path} is not valid YAML ({exc.__class__.__name__})") from exc
        unknown = sorted(set(values) - {"out_dir", "data", "autoencoder", "ldm", "seed", "augment"})
        if unknown:
            raise InputError(f"unknown config sections in {path}: {', '.join(unknown)}")
        for key in ("out_dir", "data", "autoencoder"):
            if key not in values:
                raise InputError(f"config {path} lacks '{key}'")
        return cls(**values, source=str(path))

    def augment_spec(self):
        """The :class:`~lcid.synth.augment.AugmentSpec` of the ``augment`` section, ``None`` without one."""
        from lcid.synth.augment import AugmentSpec

        return None if self.augment is None else AugmentSpec.from_dict(self.augment)

    def train_config(self, stage: str) -> TrainConfig:
        """The shared loop's settings for ``stage`` ("autoencoder" or "ldm")."""
        section = getattr(self, stage)
        values = {"seed": self.seed, **dict(section.get("train", {}))}
        return TrainConfig.from_dict({"out_dir": str(self.stage_dir(stage) / "run"), **values})

    def lr_schedule(self, stage: str) -> dict[str, Any]:
        """``schedule`` and ``warmup_steps`` of ``stage`` (default: constant, no warm-up)."""
        section = getattr(self, stage)
        return {"schedule": str(section.get("schedule", "constant")), "warmup_steps": int(section.get("warmup_steps", 0))}

    def stage_dir(self, stage: str) -> Path:
        return Path(self.out_dir) / stage

    @property
    def model_dir(self) -> Path:
        """Where the finished two-stage model is saved."""
        return Path(self.out_dir) / "model"
