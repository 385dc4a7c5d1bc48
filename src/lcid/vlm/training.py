"""Train the vision-language model on a VQA data set with the shared loop (:func:`lcid.train.loop.fit`)."""

from __future__ import annotations

import json
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
    """

    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=lambda: {"steps": 1000})
    vocab_size: int = 1024
    min_answer_count: int = 1
    lm_weight: float = 1.0
    head_weight: float = 1.0

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
    train_config = TrainConfig.from_dict({**settings.train, "out_dir": str(out_dir)})
    began = time.perf_counter()
    loss_fn = partial(vlm_loss, lm_weight=settings.lm_weight, head_weight=settings.head_weight)
    result = fit(model, loss_fn, dataset, train_config, collate_fn=dataset.collate)
    record = {
        "command": command,
        "data": {"dir": str(data_dir), "format": data_format, "split": "train", "questions": len(samples),
                 "images": len(images), "head_answers": len(labels)},
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
    return record


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
