"""The one entry point the command line and the web app call: :func:`ask`."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lcid.errors import InputError
from lcid.vlm.ensemble import ENSEMBLE_FILE, VLMEnsemble, predict_images
from lcid.vlm.image import check_image, load_image
from lcid.vlm.model import FlamingoVLM
from lcid.vlm.predict import detected, final_answer
from lcid.vlm.prompt import DEFAULT_QUESTION, build_prompt

#: Shipped models: one folder per model name.
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"

#: Answers listed under ``problems`` for a multiclass (VQA) head.
TOP_ANSWERS = 5

_CACHE: dict[Path, FlamingoVLM | VLMEnsemble] = {}
_LOCK = threading.Lock()


def is_model_folder(path: Path) -> bool:
    """Whether ``path`` holds a saved vision-language model or an ensemble of them."""
    if (path / ENSEMBLE_FILE).is_file():
        return True
    try:
        return "vision" in json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False


def installed_models() -> list[str]:
    """Names of the shipped vision-language models (other shipped models, e.g. synthesis ones, are left out)."""
    return sorted(p.name for p in MODELS_DIR.iterdir() if is_model_folder(p)) if MODELS_DIR.is_dir() else []


def resolve_model(model: str | Path) -> Path:
    """Folder of a shipped model name (``src/lcid/models/<name>``) or of a model directory."""
    path = Path(model)
    if path.is_dir() and is_model_folder(path):
        return path.resolve()
    shipped = MODELS_DIR / str(model)
    if shipped.is_dir() and is_model_folder(shipped):
        return shipped
    raise InputError(f"model {model} is not installed (shipped models: {', '.join(installed_models()) or 'none'})")


def load_model(model: str | Path) -> FlamingoVLM | VLMEnsemble:
    """Load (once per process) a model or an ensemble by shipped name or directory, in eval mode."""
    folder = resolve_model(model)
    with _LOCK:
        if folder not in _CACHE:
            try:
                if (folder / ENSEMBLE_FILE).is_file():
                    loaded: FlamingoVLM | VLMEnsemble = VLMEnsemble.from_pretrained(folder)
                else:
                    loaded = FlamingoVLM.from_pretrained(str(folder))
            except (OSError, ValueError, RuntimeError) as exc:
                raise InputError(f"cannot load model from {folder} ({exc.__class__.__name__})") from exc
            _CACHE[folder] = loaded.eval()
        return _CACHE[folder]


def ask(
    image: str | Path | np.ndarray,
    *,
    question: str = DEFAULT_QUESTION,
    acq: str | None = None,
    findings: Mapping[str, Any] | None = None,
    model: str = "dwi",
    history: Sequence[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """Answer a question about an image.

    Parameters
    ----------
    image
        PNG/JPEG/NIfTI path, or a 2D array ``(H, W)``.
    question
        The question in plain English.
    acq
        Acquisition text (b-values, directions …) for DWI models.
    findings
        A ``findings.json`` dict from ``lcid check`` to condition on.
    model
        Shipped model name (``dwi``, ``vqa-rad``) or a model directory.
    history
        Earlier ``(question, answer)`` turns of the conversation.

    Returns
    -------
    dict
        ``{"answer": str, "problems": [{"problem": label, "probability": p}, ...]}``:
        problems are the head's outputs (problem ids for DWI, top answers for VQA). A
        multi-label (DWI) model adds each problem's decision ``threshold`` (chosen on
        validation data and saved with the model, 0.5 for models without) and whether it is
        ``detected`` (probability at or above it), and ``detected``: those problem ids.
    """
    if not question or not question.strip():
        raise InputError("the question is empty")
    vlm = load_model(model)
    array = load_image(image) if isinstance(image, (str, Path)) else check_image(image)
    prompt = build_prompt(question, acq=acq, findings=findings, history=history)
    with torch.inference_mode():
        # a multiclass head gives the answer by itself: skip the generation it would not use
        generate = 0 if vlm.cfg.head == "multiclass" else vlm.cfg.answer_tokens
        prediction = predict_images(vlm, [array], [prompt], max_new_tokens=generate)[0]
    shown = TOP_ANSWERS if vlm.cfg.head == "multiclass" else len(prediction.head)
    result: dict[str, Any] = {
        "answer": final_answer(vlm, prediction, question=question),
        "problems": [{"problem": label, "probability": round(p, 4)} for label, p in prediction.head[:shown]],
    }
    if vlm.cfg.head == "multilabel":
        found = detected(vlm, prediction)
        for entry in result["problems"]:
            entry["threshold"] = vlm.threshold(entry["problem"])
            entry["detected"] = entry["problem"] in found
        result["detected"] = list(found)
    return result
