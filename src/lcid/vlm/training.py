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
from lcid.io.vqa import VQAFormat, VQASample, read_vqa_split
from lcid.io.vqa_holdout import answer_overlap, holdout_split
from lcid.train.config import TrainConfig
from lcid.train.loop import fit
from lcid.train.schedule import scheduled_adamw
from lcid.vlm.augment import AugmentSettings
from lcid.vlm.aux_targets import aux_target_table, image_attributes
from lcid.vlm.config import VLMConfig
from lcid.vlm.data import VLMDataset
from lcid.vlm.model import FlamingoVLM
from lcid.vlm.model_card import write_model_card
from lcid.vlm.objective import vlm_loss
from lcid.vlm.tokenizer import VLMTokenizer
from lcid.vlm.transfer import inherit_architecture, load_source, started_from
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
    aux_targets, aux_weight
        Image-level auxiliary targets collected from the training split (any of ``organ``,
        ``modality``, ``plane``; see :mod:`lcid.vlm.aux_targets`) and the weight of their loss.
    aux_presupposition
        Also let questions of any type vote on an image's modality through words that presuppose
        it ("this radiograph", "T2 weighted", ...; :func:`lcid.vlm.aux_targets.presupposed_modality`).
        Off: only MODALITY-typed questions vote (recipes written before this key).
    label_smoothing
        Label smoothing of the multiclass head's cross-entropy.
    augment
        :class:`lcid.vlm.augment.AugmentSettings` fields; empty keeps the original
        augmentation (whole-pixel shifts up to 6 %, ±10 % contrast).
    scanner_augment
        DWI recipe only: :class:`lcid.vlm.dwi.scanner_augment.ScannerAugment` fields (flips,
        coil bias field, gamma, faint noise, after ``augment``); empty: off.
    ema_decay
        When above 0, an exponential moving average of the weights (this decay per step) is
        kept during training and saved as the model.
    holdout_fraction, holdout_seed
        When above 0, this fraction of the training questions (drawn with ``holdout_seed``)
        is held out of training and scored at the end (``validation.json`` in the model
        folder): for choosing recipes without touching the test split.
    holdout_sources
        DWI recipe only: real or phantom sources (``siemens_prisma_ap``, ``philips_elition``, ...)
        whose pictures are all kept out of fitting, as a scanner the model never saw: a
        leave-one-scanner-out run for choosing how to combine evidence
        (:mod:`lcid.vlm.dwi.cross_scanner`). Their row ids join ``data.validation_ids``.
    holdout_groups, holdout_phrase_types
        Hold out whole groups of questions (same image, normalised answer and question
        type) rather than single questions, and only questions of these phrase types
        (VQA-RAD: ``[freeform, para]``, the phrase types of its test split); see
        :func:`lcid.io.vqa_holdout.holdout_split`. ``validation.json`` records how many
        held-out questions still have a training question about the same image with the
        same answer (``answer_overlap``).
    init_from
        Start from a saved model's weights instead of random ones: a shipped model name
        (``dwi``) or a model folder (an ensemble: its first member). The new model takes that
        model's architecture (the recipe's ``model`` section keeps image size, dropout, head
        size, sequence length) and every weight not tied to its vocabulary or labels
        (:mod:`lcid.vlm.transfer`); what was copied is recorded under ``data.init_from`` in
        ``training.json``. Empty: from scratch.
    """

    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=lambda: {"steps": 1000})
    vocab_size: int = 1024
    min_answer_count: int = 1
    lm_weight: float = 1.0
    head_weight: float = 1.0
    schedule: str = "constant"
    warmup_steps: int = 100
    aux_targets: list[str] = field(default_factory=list)
    aux_weight: float = 0.5
    aux_presupposition: bool = False
    label_smoothing: float = 0.0
    augment: dict[str, float] = field(default_factory=dict)
    scanner_augment: dict[str, Any] = field(default_factory=dict)
    ema_decay: float = 0.0
    holdout_fraction: float = 0.0
    holdout_seed: int = 0
    holdout_sources: list[str] = field(default_factory=list)
    holdout_groups: bool = False
    holdout_phrase_types: list[str] = field(default_factory=list)
    init_from: str = ""

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
    if settings.holdout_sources:
        raise InputError("holdout_sources is a key of DWI recipes (lcid train vlm); VQA questions have no scanner")
    samples, held_out = training_questions(data_dir, settings, data_format=data_format)
    labels = answer_vocabulary(samples, min_count=settings.min_answer_count)
    examples, images = vqa_examples(samples)
    aux_labels: dict[str, tuple[str, ...]] = {}
    image_targets: dict[str, list[int]] = {}
    if settings.aux_targets:
        aux_labels, image_targets = aux_target_table(
            image_attributes(samples, settings.aux_targets, presupposition=settings.aux_presupposition),
            settings.aux_targets
        )
    source, source_dir = load_source(settings.init_from) if settings.init_from else (None, None)
    model_section = settings.model if source is None else inherit_architecture(
        settings.model, source.cfg, name=settings.init_from)
    cfg = VLMConfig.from_dict(
        {**model_section, "head": "multiclass", "head_labels": list(labels), "aux_labels": aux_labels}
    )
    torch.manual_seed(int(settings.train.get("seed", 0)))
    if cfg.language == "gpt2-scratch":
        texts = [e.prompt + " " + e.answer for e in examples]
        tokenizer = VLMTokenizer.train(texts, vocab_size=settings.vocab_size)
    elif source is not None and source.tokenizer is not None:
        tokenizer = source.tokenizer  # the source's Hugging Face tokenizer, saved with it: nothing to fetch
    else:
        tokenizer = VLMTokenizer.from_hf(cfg.language)
    init_record: dict[str, Any] = {}
    if source is None:
        model = FlamingoVLM.build(cfg, tokenizer)
    else:
        model, transferred = started_from(source, cfg, tokenizer)
        init_record = {"init_from": {"model": settings.init_from, "folder": str(source_dir), **transferred}}
    cfg = model.cfg
    dataset = VLMDataset(
        examples, images, tokenizer, image_size=cfg.image_size, max_length=cfg.max_length,
        head_labels=cfg.head_labels, head="multiclass",
        augment=AugmentSettings.from_dict(settings.augment) if settings.augment else True,
        image_targets=image_targets,
    )
    data_record = {"dir": str(data_dir), "format": data_format, "split": "train", "questions": len(samples),
                   "images": len(images), "head_answers": len(labels), "held_out_questions": len(held_out),
                   "aux_known_images": {a: sum(t[i] >= 0 for t in image_targets.values())
                                        for i, a in enumerate(settings.aux_targets)}, **init_record}
    record = fit_and_save(model, tokenizer, dataset, settings, out_dir, command=command, data_record=data_record,
                          write_card=lambda folder: write_model_card(folder, model.cfg))
    if held_out:
        from lcid.vlm.evaluate import evaluate

        trained = FlamingoVLM.from_pretrained(out_dir / "model")
        scores = evaluate(trained, held_out, train_samples=samples, embeddings=False)
        scores["answer_overlap"] = answer_overlap(held_out, samples)
        (out_dir / "model" / VALIDATION_FILE).write_text(json.dumps(scores, indent=2) + "\n")
        record["validation"] = scores
    return record


def training_questions(
    data_dir: str | Path, settings: VQATrainSettings, *, data_format: VQAFormat = "vqa-rad"
) -> tuple[list[VQASample], list[VQASample]]:
    """The training split's questions a recipe fits on, and those its hold-out settings keep out."""
    samples = read_vqa_split(data_dir, split="train", data_format=data_format)
    return holdout_split(samples, fraction=settings.holdout_fraction, seed=settings.holdout_seed,
                         groups=settings.holdout_groups, phrase_types=settings.holdout_phrase_types)


#: Scores on the held-out training questions, saved in the model folder.
VALIDATION_FILE = "validation.json"


def fit_and_save(
    model: FlamingoVLM,
    tokenizer: VLMTokenizer,
    dataset: VLMDataset,
    settings: VQATrainSettings,
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
    loss_fn = partial(vlm_loss, lm_weight=settings.lm_weight, head_weight=settings.head_weight,
                      aux_weight=settings.aux_weight if settings.aux_targets else 0.0,
                      label_smoothing=settings.label_smoothing)
    optimizer, schedule = scheduled_adamw(model, train_config, schedule=settings.schedule,
                                          warmup_steps=settings.warmup_steps)
    extra_state: dict[str, Any] = {"lr_schedule": schedule}
    ema = _ema(model, optimizer, decay=settings.ema_decay)
    if ema is not None:
        extra_state["ema"] = ema
    result = fit(model, loss_fn, dataset, train_config, optimizer=optimizer, collate_fn=dataset.collate,
                 extra_state=extra_state)
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
    if ema is not None:
        model.load_state_dict(ema.module.state_dict())
    model.tokenizer = tokenizer
    with atomic_dir(out_dir / "model") as tmp:
        model.save_pretrained(tmp, config=cfg.to_dict(), model_card_kwargs={})
        (tmp / "training.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
        write_card(tmp)
    return record


def _ema(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, *, decay: float
) -> torch.optim.swa_utils.AveragedModel | None:
    """An exponential moving average of ``model``'s weights, updated after every optimizer step."""
    if decay <= 0:
        return None
    if decay >= 1:
        raise InputError(f"ema_decay must be in [0, 1), not {decay}")
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    optimizer.register_step_post_hook(lambda *_: ema.update_parameters(model))
    return ema


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


__all__ = ["VALIDATION_FILE", "VQATrainSettings", "copy_model", "holdout_split", "train_vqa", "training_questions"]
