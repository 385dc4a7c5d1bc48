"""Training loss: next-token cross-entropy on the answer, the classification-head loss and,
for models with auxiliary image heads, their cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lcid.vlm.model import FlamingoVLM


def vlm_loss(
    model: FlamingoVLM,
    batch: dict[str, torch.Tensor],
    *,
    lm_weight: float = 1.0,
    head_weight: float = 1.0,
    aux_weight: float = 0.0,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``lm_weight * CE(answer tokens) + head_weight * head loss + aux_weight * aux loss`` and the parts for the log.

    The head loss is cross-entropy for a ``multiclass`` head (targets -100 are skipped; with
    ``label_smoothing`` the target keeps ``1 - label_smoothing`` of its mass) and binary
    cross-entropy for a ``multilabel`` head. The auxiliary loss is the mean over the
    auxiliary image heads of their cross-entropy against ``batch["aux_targets"]``
    ``(B, n_heads)`` (-100 skipped); it is computed only when ``aux_weight > 0``.
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
            head = F.cross_entropy(head_logits, target, ignore_index=-100, label_smoothing=label_smoothing)
        else:
            head = head_logits.sum() * 0.0
        loss = loss + head_weight * head
        logs["head_loss"] = float(head.detach())
    if aux_weight > 0 and "aux_logits" in out and "aux_targets" in batch:
        aux = aux_loss(out["aux_logits"], batch["aux_targets"])
        loss = loss + aux_weight * aux
        logs["aux_loss"] = float(aux.detach())
    return loss, logs


def aux_loss(logits: dict[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the auxiliary heads (in ``logits``' order = columns of ``targets``).

    Heads with no known target in the batch (all -100) add nothing.
    """
    parts = []
    for column, head_logits in enumerate(logits.values()):
        target = targets[:, column]
        if bool((target >= 0).any()):
            parts.append(F.cross_entropy(head_logits, target, ignore_index=-100))
    if not parts:
        return sum(h.sum() for h in logits.values()) * 0.0
    return torch.stack(parts).mean()
