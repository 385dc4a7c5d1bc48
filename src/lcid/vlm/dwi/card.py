"""The model card of a DWI model: the shared card plus how to rebuild the data, retrain and what it scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lcid.io.atomic import atomic_write_text
from lcid.vlm.config import VLMConfig
from lcid.vlm.ensemble import ENSEMBLE_FILE
from lcid.vlm.model_card import (
    EVALUATION_FILE,
    TRAINING_FILE,
    ensemble_card_inputs,
    load_record,
    render_ensemble_card,
    render_model_card,
)


def render_dwi_card(cfg: VLMConfig, training: dict[str, Any] | None, evaluation: dict[str, Any] | None) -> str:
    """Markdown: :func:`lcid.vlm.model_card.render_model_card` (without its VQA score table),
    the commands that rebuild the data set and retrain the model, and the DWI scores."""
    text = render_model_card(cfg, training, None)
    data = (training or {}).get("data") or {}
    build = data.get("build") or {}
    lines = [
        "", "## What it does", "",
        "Looks at one DWI slice picture (PNG/JPEG or a NIfTI slice), optionally with acquisition text and",
        "`lcid check` findings, names the problems it shows (multi-label head over the lcid problem ids)",
        "and answers in words (generated). See docs/vlm.md for which problems one slice can show.",
        *_input_channels(cfg),
        "", "## Rebuild and retrain", "", "```bash",
        f"lcid data build-vlm --out {data.get('dir', 'runs/dwi-vlm-data')} --n {build.get('n', '?')} --seed {build.get('seed', '?')}",
        f"{(training or {}).get('command', 'lcid train vlm --config configs/vlm/dwi.yaml')}",
        "```", "",
        "Per-problem decision thresholds (`thresholds.json`, 0.5 where absent) are chosen on training",
        "scans kept out of fitting, by the training command itself or by",
        f"`lcid model calibrate MODEL --data {data.get('dir', 'DATA')}`; never on the held-out scanners.", "",
        f"Held out (never trained on): {', '.join(build.get('holdout', [])) or 'see build.json'}.",
    ]
    return text + "\n".join(lines + evaluation_lines(evaluation)) + "\n"


def evaluation_lines(evaluation: dict[str, Any] | None) -> list[str]:
    """The card's table of DWI scores (held-out scanner and phantom); empty without an evaluation."""
    lines: list[str] = []
    if evaluation:
        head = evaluation["head"]["image_visible"]
        text_scores = evaluation["text"]["image_visible"]
        lines += ["", "## Evaluation (held-out scanner and phantom)", "",
                  "| metric | value |", "| --- | --- |",
                  f"| questions | {evaluation['n']} |",
                  f"| macro F1, image-visible problems, head at 0.5 | {head['macro_f1']:.3f} |",
                  *([(f"| macro F1, image-visible problems, head at the saved thresholds | "
                       f"{evaluation['head_calibrated']['image_visible']['macro_f1']:.3f} |")]
                    if "head_calibrated" in evaluation else []),
                  f"| macro F1, image-visible problems, generated text | {text_scores['macro_f1']:.3f} |",
                  *([(f"| macro F1, image-visible problems, answer shown (text grounded in the head) | "
                      f"{evaluation['answer']['image_visible']['macro_f1']:.3f} |"),
                     f"| answers shown as generated | {evaluation['answer_is_generated']:.1%} |"]
                    if "answer" in evaluation else []),
                  f"| BLEU-4 | {evaluation['bleu4']:.3f} |"]
        if "embedding_cosine" in evaluation:
            lines.append(f"| embedding cosine | {evaluation['embedding_cosine']:.3f} |")
        latency = evaluation.get("latency_s") or {}
        if latency:
            lines.append(f"| latency per answer, median (s, {latency['threads']} thread(s)) | {latency['median']:.3f} |")
    return lines


def _input_channels(cfg: VLMConfig) -> list[str]:
    """A card line naming the built-in CNN's input channels (none for a one-channel or HF encoder)."""
    if cfg.vision != "cnn" or not (cfg.fft_channel or cfg.background_window):
        return []
    channels = ["the picture"]
    if cfg.fft_channel:
        channels.append("its log Fourier spectrum")
    if cfg.background_window:
        channels.append(f"the picture in the dark window 0-{cfg.background_window:g} of its display range")
    return ["", f"The CNN's input channels: {', '.join(channels)}."]


def write_dwi_card(folder: str | Path) -> Path:
    """(Re)write ``README.md`` of a DWI model (or ensemble) folder from its config, training and evaluation records."""
    folder = Path(folder)
    if (folder / ENSEMBLE_FILE).is_file():
        record, members, evaluation = ensemble_card_inputs(folder)
        from lcid.vlm.dwi.statistics_model import RECORD_FILE

        text = render_ensemble_card(record, members, None, evaluation_lines=evaluation_lines(evaluation),
                                    statistics=load_record(folder, RECORD_FILE))
        return atomic_write_text(folder / "README.md", text)
    cfg = VLMConfig.from_dict(json.loads((folder / "config.json").read_text()))
    return atomic_write_text(folder / "README.md", render_dwi_card(cfg, load_record(folder, TRAINING_FILE),
                                                                   load_record(folder, EVALUATION_FILE)))
