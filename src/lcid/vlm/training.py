"""Train the vision-language model on a VQA data set with the shared loop (:func:`lcid.train.loop.fit`)."""

from __future__ import annotations

import json
import math
import platform
import shutil
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import yaml

from lcid.errors import InputError
from lcid.io.atomic import atomic_dir
from lcid.io.vqa import VQAFormat, read_vqa_split
from lcid.train.config import TrainConfig
from lcid.train.loop import fit
from lcid.vlm.config import VLMConfig
from lcid.vlm.data import VLMDataset
from lcid.vlm.model import FlamingoVLM
from lcid.vlm.model_card import write_model_card
from lcid.vlm.objective import vlm_loss
from lcid.vlm.tokenizer import VLMTokenizer
from lcid.vlm.vqa_source import answer_vocabulary, vqa_examples


@dataclass(frozen=True)
class VQATrainSettings:
    """A training recipe (the YAML file ``configs/vlm/*.yaml``).

    Attributes
    ----------
    model
        :class:`VLMConfig` fields (``head_labels`` and ``vocab_size`` are filled in from data).
    train
        :class:`lcid.train.config.TrainConfig` fields except ``out_dir``.
    vocab_size
        Tokenizer size to learn (built-in LM only).
    min_answer_count
        Answers seen fewer times in training are left out of the head's vocabulary.
    lm_weight, head_weight
        Weights of the generation and classification losses.
    schedule, warmup_steps
        Learning rate: ``"cosine"`` (linear warm-up, then cosine decay to 5 % of ``lr``) or
        ``"constant"``.
    """

    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=lambda: {"steps": 1000})
    vocab_size: int = 1024
    min_answer_count: int = 1
    lm_weight: float = 1.0
    head_weight: float = 1.0
    schedule: str = "constant"
    warmup_steps: int = 100

    @classmethod
    def from_yaml(cls, path: str | Path) -> VQATrainSettings:
        """Read a recipe; unknown keys are an :class:`InputError`."""
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"cannot read training config {path} ({exc.__class__.__name__})") from exc
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown keys in {path}: {', '.join(unknown)}")
        return cls(**data)


def train_vqa(
    data_dir: str | Path,
    *,
    settings: VQATrainSettings,
    out_dir: str | Path,
    data_format: VQAFormat = "vqa-rad",
    command: str = "",
) -> dict[str, Any]:
    """Train on the ``train`` split and save the model to ``out_dir/model``.

    Checkpoints and ``metrics.jsonl`` go to ``out_dir`` (a rerun resumes); the final
    model folder holds weights, config, tokenizer, model card and ``training.json`` (the
    command, the recipe, the seed, the time taken, the software versions).

    Returns
    -------
    dict
        The content of ``training.json``.
    """
    out_dir = Path(out_dir)
    samples = read_vqa_split(data_dir, split="train", data_format=data_format)
    labels = answer_vocabulary(samples, min_count=settings.min_answer_count)
    examples, images = vqa_examples(samples)
    cfg = VLMConfig.from_dict({**settings.model, "head": "multiclass", "head_labels": list(labels)})
    torch.manual_seed(int(settings.train.get("seed", 0)))
    if cfg.language == "gpt2-scratch":
        texts = [e.prompt + " " + e.answer for e in examples]
        tokenizer = VLMTokenizer.train(texts, vocab_size=settings.vocab_size)
    else:
        tokenizer = VLMTokenizer.from_hf(cfg.language)
    model = FlamingoVLM.build(cfg, tokenizer)
    cfg = model.cfg
    dataset = VLMDataset(
        examples, images, tokenizer, image_size=cfg.image_size, max_length=cfg.max_length,
        head_labels=cfg.head_labels, head="multiclass", augment=True,
    )
    data_record = {"dir": str(data_dir), "format": data_format, "split": "train", "questions": len(samples),
                   "images": len(images), "head_answers": len(labels)}
    return fit_and_save(model, tokenizer, dataset, settings, out_dir, command=command, data_record=data_record,
                        write_card=lambda folder: write_model_card(folder, model.cfg))


def fit_and_save(
    model: FlamingoVLM,
    tokenizer: VLMTokenizer,
    dataset: VLMDataset,
    settings,
    out_dir: Path,
    *,
    command: str,
    data_record: dict,
    write_card,
) -> dict:
    """Train with the shared loop, then save model, tokenizer, training record and card.

    The record (command, data, settings, seed, result, versions) lets anyone retrain the
    same model; everything lands in ``out_dir/model`` atomically.
    """
    cfg = model.cfg
    train_config = TrainConfig.from_dict({**settings.train, "out_dir": str(out_dir)})
    began = time.perf_counter()
    loss_fn = partial(vlm_loss, lm_weight=settings.lm_weight, head_weight=settings.head_weight)
    optimizer, schedule = _optimizer(model, train_config, settings)
    result = fit(model, loss_fn, dataset, train_config, optimizer=optimizer, collate_fn=dataset.collate,
                 extra_state={"lr_schedule": schedule})
    record = {
        "command": command,
        "data": data_record,
        "settings": {**settings.__dict__},
        "train_config": train_config.to_dict(),
        "seed": train_config.seed,
        "result": result,
        "seconds": time.perf_counter() - began,
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    model = _unwrap(model)
    model.tokenizer = tokenizer
    with atomic_dir(out_dir / "model") as tmp:
        model.save_pretrained(tmp, config=cfg.to_dict(), model_card_kwargs={})
        (tmp / "training.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
        write_card(tmp)
    return record


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


def _optimizer(
    model: torch.nn.Module, config: TrainConfig, settings: VQATrainSettings
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW and its learning-rate schedule, stepped by a hook after every optimizer step
    (the shared loop steps only the optimizer; the schedule is checkpointed as extra state)."""
    if settings.schedule not in ("cosine", "constant"):
        raise InputError(f"schedule must be cosine or constant, not {settings.schedule!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    factor = partial(lr_factor, warmup=settings.warmup_steps, total=config.steps, schedule=settings.schedule)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    optimizer.register_step_post_hook(lambda *_: schedule.step())
    return optimizer, schedule


def _unwrap(model: torch.nn.Module) -> FlamingoVLM:
    return getattr(model, "module", model)  # accelerate/DDP wrapper


def copy_model(src: str | Path, dst: str | Path) -> Path:
    """Copy a saved model folder (weights, config, tokenizer, card, training record)."""
    src, dst = Path(src), Path(dst)
    with atomic_dir(dst) as tmp:
        for item in src.iterdir():
            if item.is_file():
                shutil.copy2(item, tmp / item.name)
    return dst


__all__ = ["VQATrainSettings", "train_vqa", "copy_model"]
