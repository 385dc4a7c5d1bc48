"""The model card (``README.md``) saved with a model: what it is, how it was trained, how it scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lcid.errors import InputError
from lcid.io.atomic import atomic_write_text
from lcid.vlm.config import VLMConfig

TRAINING_FILE = "training.json"
EVALUATION_FILE = "evaluation.json"


#: Hugging Face front matter of every card.
FRONT_MATTER = [
    "---",
    "library_name: lcid",
    "license: bsd-3-clause",
    "tags: [vision-language, flamingo, medical-imaging, visual-question-answering, lcid]",
    "pipeline_tag: visual-question-answering",
    "---",
]


def render_model_card(cfg: VLMConfig, training: dict[str, Any] | None, evaluation: dict[str, Any] | None) -> str:
    """Markdown with Hugging Face front matter describing the model, its training and its scores."""
    lines = [
        *FRONT_MATTER,
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
        lines += ["", "## Training", "", *_training_lines(training)]
    return "\n".join(lines + _evaluation_lines(evaluation)) + "\n"


def render_ensemble_card(
    record: dict[str, Any], members: list[tuple[VLMConfig, dict[str, Any] | None]], evaluation: dict[str, Any] | None,
    *, evaluation_lines: list[str] | None = None, prior: dict[str, Any] | None = None,
    statistics: dict[str, Any] | None = None,
) -> str:
    """Card of an ensemble folder (:mod:`lcid.vlm.ensemble`): how it combines, each member's
    architecture and training, and the ensemble's scores (``evaluation_lines`` replaces the VQA
    score table, e.g. with a DWI one; ``prior`` is ``prompt_prior.json`` and ``statistics``
    ``slice_statistics.json`` when the ensemble has one)."""
    lines = [
        *FRONT_MATTER,
        "",
        f"# lcid ensemble of {len(members)} Flamingo-style vision-language models",
        "",
        (f"The answer is read from the {record.get('combine', 'mean head probability')} of the members "
         + (f"(multiclass heads over the same {len(members[0][0].head_labels)} answers)."
            if members[0][0].head != "multilabel" else
            f"(multi-label heads over the same {len(members[0][0].head_labels)} problem ids), a problem being named "
            "at or above the ensemble's own threshold (`thresholds.json` in this folder); the first member writes "
            "the text.")),
        "",
        "Use: `lcid ask IMAGE --model DIR --question TEXT` or `lcid.vlm.inference.ask(image, question=..., model=DIR)`.",
        "Research software: not a medical device, not for diagnosis.",
    ]
    if record.get("command"):
        lines += ["", f"Built with `{record['command']}` from the members' training runs below."]
    if prior:
        lines += ["", (f"The mean is multiplied by a text-only answer model over the prompt (weight {prior.get('weight')}: "
                       f"p ∝ mean^(1-w) · prior^w; {prior.get('classifier', '')} on {prior.get('features', '')}, "
                       f"{prior.get('questions')} training questions; `prompt_prior.skops`), made with "
                       f"`{prior.get('command', '')}`.")]
    if statistics:
        data = statistics.get("data") or {}
        floor = statistics.get("noise_floor") or {}
        twice = (f" (each also with a Rician noise floor of up to {floor.get('max'):.1%} of the object's mean, as the "
                 "members were trained)") if floor else ""
        lines += ["", (f"The mean is combined by noisy-OR (1 - (1 - mean)(1 - q)) with a picture-only classifier over slice "
                       f"statistics ({statistics.get('classifier', '')}; `slice_statistics.skops`) for "
                       f"{', '.join(statistics.get('problems') or [])}, fitted on {data.get('pictures')} training "
                       f"pictures{twice}, with `{statistics.get('command', '')}`; the thresholds were chosen for the "
                       "combination.")]
    for name, (cfg, training) in zip(record["members"], members, strict=True):
        lines += ["", f"## {name}", "",
                  (f"Vision encoder `{cfg.vision}` ({cfg.image_size} px), {cfg.n_latents} latents, language model "
                  f"`{cfg.language}` ({cfg.n_layers} layers, width {cfg.dim})."), ""]
        lines += _training_lines(training) if training else ["(no training record)"]
    return "\n".join(lines + (evaluation_lines if evaluation_lines is not None else _evaluation_lines(evaluation))) + "\n"


def _training_lines(training: dict[str, Any]) -> list[str]:
    # long id lists (e.g. the scans kept out of fitting) are shown as their length
    data = {k: (f"{len(v)} items" if isinstance(v, list) and len(v) > 10 else v)
            for k, v in (training.get("data") or {}).items()}
    return [f"- command: `{training.get('command', '')}`", f"- seed: {training.get('seed')}",
            f"- data: {json.dumps(data)}", f"- parameters: {training.get('parameters')}",
            f"- seconds: {training.get('seconds', 0):.0f}"]


def _evaluation_lines(evaluation: dict[str, Any] | None) -> list[str]:
    if not evaluation:
        return []
    lines = ["", "## Evaluation (test split)", "", "| metric | value |", "| --- | --- |"]
    for key in ("closed_accuracy", "open_accuracy", "overall_accuracy", "majority_baseline_closed",
                "majority_baseline_open", "majority_baseline_overall", "bleu1", "bleu4", "embedding_cosine"):
        if key in evaluation:
            lines.append(f"| {key} | {evaluation[key]:.3f} |")
    return [*lines, "", "Caveat (VQA-RAD): every test image also occurs in the training split, with other questions."]


def write_model_card(folder: str | Path, cfg: VLMConfig) -> Path:
    """(Re)write ``README.md`` in a model folder from its ``training.json`` and ``evaluation.json``."""
    folder = Path(folder)
    return atomic_write_text(folder / "README.md", render_model_card(cfg, load_record(folder, TRAINING_FILE),
                                                                     load_record(folder, EVALUATION_FILE)))


def ensemble_card_inputs(
    folder: str | Path,
) -> tuple[dict[str, Any], list[tuple[VLMConfig, dict[str, Any] | None]], dict[str, Any] | None]:
    """``ensemble.json``, each member's config and ``training.json``, and the ensemble's ``evaluation.json``."""
    from lcid.vlm.ensemble import read_record

    folder = Path(folder)
    record = read_record(folder)
    members = [(VLMConfig.from_dict(json.loads((folder / name / "config.json").read_text())),
                load_record(folder / name, TRAINING_FILE)) for name in record["members"]]
    return record, members, load_record(folder, EVALUATION_FILE)


def write_ensemble_card(folder: str | Path) -> Path:
    """(Re)write ``README.md`` of a VQA ensemble folder from :func:`ensemble_card_inputs`."""
    from lcid.vlm.prompt_prior import RECORD_FILE

    return atomic_write_text(Path(folder) / "README.md", render_ensemble_card(
        *ensemble_card_inputs(folder), prior=load_record(folder, RECORD_FILE)))


def load_record(folder: str | Path, name: str) -> dict[str, Any] | None:
    """A JSON record of a model folder (``training.json``, ``evaluation.json`` ...); ``None`` when
    absent, :class:`InputError` when unreadable."""
    path = Path(folder) / name
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path} ({exc.__class__.__name__})") from exc
