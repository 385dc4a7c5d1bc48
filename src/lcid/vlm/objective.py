"""Training loss: next-token cross-entropy on the answer plus the classification-head loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lcid.vlm.model import FlamingoVLM


def vlm_loss(
    model: FlamingoVLM, batch: dict[str, torch.Tensor], *, lm_weight: float = 1.0, head_weight: float = 1.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """``lm_weight * CE(answer tokens) + head_weight * head loss`` and both parts for the log.

    The head loss is cross-entropy for a ``multiclass`` head (targets -100 are skipped) and
    binary cross-entropy for a ``multilabel`` head.
    """
    out = model(batch["pixels"], batch["input_ids"], batch["attention_mask"], head_positions=batch["head_position"])
    logits = out["logits"][:, :-1]
    targets = batch["labels"][:, 1:]
    lm = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
    loss = lm_weight * lm
    logs = {"lm_loss": float(lm.detach())}
    if "head_logits" in out:
        head_logits, target = out["head_logits"], batch["head_target"]
        if target.ndim == 2:
            head = F.binary_cross_entropy_with_logits(head_logits, target.float())
        elif bool((target >= 0).any()):
            head = F.cross_entropy(head_logits, target, ignore_index=-100)
        else:
            head = head_logits.sum() * 0.0
        loss = loss + head_weight * head
        logs["head_loss"] = float(head.detach())
    return loss, logs
