"""Conditions as cross-attention context, with classifier-free guidance's 'no condition'.

A context is ``(B, 1, D)``: a one-hot class (or standardised covariates) followed by a
'present' flag of 1. The unconditional context is all ``NULL_FILL`` (-1), the value MONAI's
``DiffusionInferer.sample(cfg=...)`` fills for its unconditional pass, so training with
condition dropout and MONAI's guided sampling agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lcid.errors import InputError
from lcid.synth.spec import DiffusionSpec

NULL_FILL = -1.0


def class_index(spec: DiffusionSpec, label: str | int) -> int:
    """Index of a class given by name (case-insensitive) or by index."""
    if isinstance(label, int) or (isinstance(label, str) and label.isdigit()):
        index = int(label)
        if not 0 <= index < len(spec.classes):
            raise InputError(f"class index {index} out of range 0..{len(spec.classes) - 1}")
        return index
    names = [c.lower() for c in spec.classes]
    if label.lower() not in names:
        raise InputError(f"unknown class {label!r}: this model knows {', '.join(spec.classes)}")
    return names.index(label.lower())


def class_context(spec: DiffusionSpec, indices: torch.Tensor) -> torch.Tensor:
    """One-hot context ``(B, 1, n_classes + 1)`` for integer class indices ``(B,)``."""
    onehot = torch.nn.functional.one_hot(indices.long().reshape(-1), len(spec.classes)).float()
    flag = torch.ones(onehot.shape[0], 1)
    return torch.cat([onehot, flag.to(onehot)], dim=1)[:, None, :]


def covariate_context(spec: DiffusionSpec, values: torch.Tensor) -> torch.Tensor:
    """Standardised covariates ``(B, n)`` -> context ``(B, 1, n + 1)``."""
    values = values.float().reshape(values.shape[0], -1)
    if values.shape[1] != len(spec.covariates):
        raise InputError(f"expected {len(spec.covariates)} covariates ({', '.join(spec.covariates)}), got {values.shape[1]}")
    mean = torch.tensor(spec.covariate_mean or [0.0] * values.shape[1])
    std = torch.tensor(spec.covariate_std or [1.0] * values.shape[1])
    z = (values - mean.to(values)) / std.to(values).clamp_min(1e-8)
    return torch.cat([z, torch.ones_like(z[:, :1])], dim=1)[:, None, :]


def context_for(spec: DiffusionSpec, condition: torch.Tensor | None) -> torch.Tensor | None:
    """Context for a batch's raw condition (class indices or covariate values), or ``None``."""
    if spec.conditioning == "none":
        return None
    if condition is None:
        raise InputError(f"this model is conditioned on {spec.conditioning}: give a condition")
    if spec.conditioning == "class":
        return class_context(spec, condition)
    return covariate_context(spec, condition)


def drop_conditions(context: torch.Tensor, probability: float) -> torch.Tensor:
    """Replace each sample's context by the null context with ``probability`` (training for CFG)."""
    if probability <= 0:
        return context
    drop = torch.rand(context.shape[0], device=context.device) < probability
    return torch.where(drop[:, None, None], torch.full_like(context, NULL_FILL), context)


def parse_condition(spec: DiffusionSpec, text: str | Sequence[float] | None, n: int) -> torch.Tensor | None:
    """A user's condition ('pneumonia', '1', or 'age=70,sex=1') as a raw condition for ``n`` samples."""
    if spec.conditioning == "none":
        if text not in (None, ""):
            raise InputError("this model is unconditional: leave out --condition")
        return None
    if text in (None, ""):
        raise InputError(f"this model needs --condition ({', '.join(spec.classes or spec.covariates)})")
    if spec.conditioning == "class":
        return torch.full((n,), class_index(spec, str(text)), dtype=torch.long)
    if isinstance(text, str):
        pairs = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        missing = [c for c in spec.covariates if c not in pairs]
        if missing:
            raise InputError(f"condition must give {', '.join(f'{c}=VALUE' for c in spec.covariates)}")
        values = [float(pairs[c]) for c in spec.covariates]
    else:
        values = [float(v) for v in text]
    return torch.tensor(values, dtype=torch.float32)[None, :].repeat(n, 1)
