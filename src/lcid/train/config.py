"""Settings of one training run, saved as ``config.json`` next to its checkpoints."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Literal

MixedPrecision = Literal["no", "fp16", "bf16"]


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`lcid.train.loop.fit` trains.

    Attributes
    ----------
    out_dir
        Folder for ``config.json``, ``metrics.jsonl`` and ``checkpoints/step-N``.
    steps
        Number of optimizer steps (each consumes ``grad_accum`` batches).
    batch_size
        Samples per batch and process.
    lr, weight_decay
        AdamW learning rate and decoupled weight decay (used when no optimizer is given).
    seed
        Seeds torch/numpy/random (``accelerate.utils.set_seed``) and the data order.
    checkpoint_every, log_every
        Steps between checkpoints (the last 2 are kept; one is always written at the end)
        and between lines of ``metrics.jsonl``.
    grad_accum
        Batches whose gradients are summed into one optimizer step.
    grad_clip
        Maximum global gradient norm, ``None`` for no clipping.
    mixed_precision
        Accelerate's ``"no"``, ``"fp16"`` or ``"bf16"``.
    num_workers
        DataLoader worker processes.
    """

    out_dir: str
    steps: int
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    checkpoint_every: int = 200
    log_every: int = 20
    grad_accum: int = 1
    grad_clip: float | None = 1.0
    mixed_precision: str = "no"  # accelerate's "no" | "fp16" | "bf16"
    num_workers: int = 0

    def __post_init__(self) -> None:
        from lcid.errors import InputError

        for name in ("steps", "batch_size", "checkpoint_every", "log_every", "grad_accum"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"training setting {name} must be at least 1, got {getattr(self, name)}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise InputError(f"mixed_precision must be 'no', 'fp16' or 'bf16', got {self.mixed_precision!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dictionary of the settings."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """The settings as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dictionary, rejecting unknown keys with an :class:`InputError`."""
        from lcid.errors import InputError

        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"unknown training settings: {', '.join(unknown)}")
        return cls(**values)
