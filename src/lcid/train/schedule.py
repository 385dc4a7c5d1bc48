"""Learning-rate schedules for the shared training loop: constant, or linear warm-up then
cosine decay to 5 % of the base rate.

The loop (:func:`lcid.train.loop.fit`) steps only the optimizer; the schedule is a
``LambdaLR`` stepped by a hook after every optimizer step and checkpointed as extra state,
so a resumed run continues on the same curve.
"""

from __future__ import annotations

import math
from functools import partial

import torch

from lcid.errors import InputError
from lcid.train.config import TrainConfig

SCHEDULES = ("constant", "cosine")


def lr_factor(step: int, *, warmup: int, total: int, schedule: str) -> float:
    """Multiplier of the base learning rate after ``step`` optimizer steps.

    >>> lr_factor(0, warmup=10, total=100, schedule="cosine"), lr_factor(100, warmup=10, total=100, schedule="cosine")
    (0.1, 0.05)
    """
    if schedule == "constant":
        return 1.0
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress))


def scheduled_adamw(
    model: torch.nn.Module, config: TrainConfig, *, schedule: str = "constant", warmup_steps: int = 0
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the trainable parameters (``config.lr``, ``config.weight_decay``) and its
    schedule; pass both to :func:`lcid.train.loop.fit` (``optimizer=``, ``extra_state=``).

    Raises
    ------
    InputError
        For a schedule other than those in :data:`SCHEDULES`.
    """
    if schedule not in SCHEDULES:
        raise InputError(f"schedule must be cosine or constant, not {schedule!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    factor = partial(lr_factor, warmup=int(warmup_steps), total=config.steps, schedule=schedule)
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    optimizer.register_step_post_hook(lambda *_: lr_schedule.step())
    return optimizer, lr_schedule
