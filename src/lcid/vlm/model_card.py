"""The model card (``README.md``) saved with a model: what it is, how it was trained, how it scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lcid.io.atomic import atomic_write_text
from lcid.vlm.config import VLMConfig

TRAINING_FILE = "training.json"
EVALUATION_FILE = "evaluation.json"


def render_model_card(cfg: VLMConfig, training: dict[str, Any] | None, evaluation: dict[str, Any] | None) -> str:
    """Markdown with Hugging Face front matter describing the model, its training and its scores."""
    lines = [
        "---",
        "library_name: lcid",
        "license: bsd-3-clause",
        "tags: [vision-language, flamingo, medical-imaging, visual-question-answering, lcid]",
        "pipeline_tag: visual-question-answering",
        "---",
        "",
        "# lcid Flamingo-style vision-language model",
        "",
        (
            f"Vision encoder `{cfg.vision}` ({cfg.image_size} px grey input) -> perceiver resampler "
            f"({cfg.n_latents} latents) -> tanh-gated cross-attention every {cfg.cross_attn_every} block(s) of the "
            f"language model `{cfg.language}` ({cfg.n_layers} layers, width {cfg.dim} when built in); "
            f"classification head `{cfg.head}` over {len(cfg.head_labels)} labels."
        ),
        "",
        "Use: `lcid ask IMAGE --model DIR --question TEXT` or `lcid.vlm.inference.ask(image, question=..., model=DIR)`.",
        "Research software: not a medical device, not for diagnosis.",
    ]
    if training:
        lines += ["", "## Training", "", f"- command: `{training.get('command', '')}`",
                  f"- seed: {training.get('seed')}", f"- data: {json.dumps(training.get('data', {}))}",
                  f"- parameters: {training.get('parameters')}", f"- seconds: {training.get('seconds', 0):.0f}"]
    if evaluation:
        lines += ["", "## Evaluation (test split)", "", "| metric | value |", "| --- | --- |"]
        for key in ("closed_accuracy", "open_accuracy", "overall_accuracy", "majority_baseline_closed",
                    "majority_baseline_open", "majority_baseline_overall", "bleu1", "bleu4", "embedding_cosine"):
            if key in evaluation:
                lines.append(f"| {key} | {evaluation[key]:.3f} |")
        lines += ["", "Caveat (VQA-RAD): every test image also occurs in the training split, with other questions."]
    return "\n".join(lines) + "\n"


def write_model_card(folder: str | Path, cfg: VLMConfig) -> Path:
    """(Re)write ``README.md`` in a model folder from its ``training.json`` and ``evaluation.json``."""
    folder = Path(folder)
    records = [json.loads((folder / name).read_text()) if (folder / name).is_file() else None
               for name in (TRAINING_FILE, EVALUATION_FILE)]
    return atomic_write_text(folder / "README.md", render_model_card(cfg, *records))
