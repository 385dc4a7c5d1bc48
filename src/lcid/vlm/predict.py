"""Answers from a trained model: greedy generation and the classification head."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lcid.io.vqa import normalize_answer
from lcid.vlm.data import encode_example
from lcid.vlm.model import FlamingoVLM


@dataclass(frozen=True)
class Prediction:
    """What the model says about one image and prompt.

    Attributes
    ----------
    generated
        Greedy-decoded answer text.
    head
        ``(label, probability)`` pairs from the classification head, most probable first
        (softmax for multiclass, independent sigmoids for multilabel); empty without a head.
    """

    generated: str
    head: tuple[tuple[str, float], ...]


@torch.no_grad()
def predict(
    model: FlamingoVLM,
    pixels: torch.Tensor,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 12,
    top_k: int | None = None,
) -> list[Prediction]:
    """Run the model on a batch.

    Parameters
    ----------
    pixels
        ``(B, 1, S, S)`` model inputs (see :func:`lcid.vlm.image.to_model_input`).
    prompts
        ``B`` prompt strings.
    max_new_tokens
        Generation stops at ``<eos>`` or after this many tokens.
    top_k
        Head labels returned per example (default all; always all for a multilabel head).
    """
    model.eval()
    tok = model.tokenizer
    assert tok is not None, "model has no tokenizer"
    cfg = model.cfg
    encoded = [encode_example(tok, p, None, max_length=cfg.max_length - max_new_tokens)[0] for p in prompts]
    lengths = torch.tensor([len(e) for e in encoded])
    width = int(lengths.max()) + max_new_tokens
    ids = torch.full((len(prompts), width), tok.pad_id, dtype=torch.long)
    for row, e in enumerate(encoded):
        ids[row, : len(e)] = torch.tensor(e)
    latents = model.encode_images(pixels)
    rows = torch.arange(len(prompts))
    mask = (torch.arange(width)[None] < lengths[:, None]).long()
    out = model(None, ids, mask, head_positions=lengths - 1, latents=latents)
    heads = _head(model, out.get("head_logits"), top_k=top_k, n=len(prompts))
    finished = torch.zeros(len(prompts), dtype=torch.bool)
    generated: list[list[int]] = [[] for _ in prompts]
    current = lengths.clone()
    for step in range(max_new_tokens):
        if step > 0:
            mask = (torch.arange(width)[None] < current[:, None]).long()
            out = model(None, ids, mask, latents=latents)
        next_ids = out["logits"][rows, current - 1].argmax(dim=-1)
        for row in range(len(prompts)):
            if finished[row]:
                continue
            token = int(next_ids[row])
            if token == tok.eos_id:
                finished[row] = True
            else:
                generated[row].append(token)
                ids[row, current[row]] = token
                current[row] += 1
        if bool(finished.all()):
            break
    return [Prediction(generated=tok.decode(g).strip(), head=h) for g, h in zip(generated, heads, strict=True)]


def _head(
    model: FlamingoVLM, logits: torch.Tensor | None, *, top_k: int | None, n: int
) -> list[tuple[tuple[str, float], ...]]:
    if logits is None:
        return [() for _ in range(n)]
    labels = model.cfg.head_labels
    if model.cfg.head == "multilabel":
        probs = torch.sigmoid(logits)
        k = len(labels)
    else:
        probs = torch.softmax(logits, dim=-1)
        k = len(labels) if top_k is None else min(top_k, len(labels))
    values, indices = probs.topk(k, dim=-1)
    return [
        tuple((labels[int(i)], float(v)) for v, i in zip(vs, ix, strict=True)) for vs, ix in zip(values, indices, strict=True)
    ]


#: First words of English polar (yes/no) questions.
_POLAR_STARTS = frozenset(
    "is are was were does do did can could has have had will would should shall may might am isn't aren't "
    "doesn't don't wasn't".split()
)


def is_polar_question(question: str) -> bool:
    """Whether a question asks for yes or no: it starts with an auxiliary verb and offers no
    alternatives (" or ").

    >>> is_polar_question("Is there a fracture?"), is_polar_question("Is this a CT or an MRI?")
    (True, False)
    """
    words = question.lower().replace("?", " ").split()
    return bool(words) and words[0] in _POLAR_STARTS and "or" not in words[1:]


def final_answer(model: FlamingoVLM, prediction: Prediction, *, question: str = "") -> str:
    """The answer shown to the user.

    A multiclass head over the training answers decides when it has one (on VQA-RAD it is
    more accurate than free generation, see docs/vqa.md): for a polar question the more
    probable of ``yes``/``no``; for an alternative question ("left or right?") the more
    probable of the head's answers named in the question; otherwise its top answer.
    Without such a head, the generated text.
    """
    if model.cfg.head == "multiclass" and prediction.head:
        if question and is_polar_question(question):
            candidates = [(label, p) for label, p in prediction.head if label in ("yes", "no")]
        else:
            candidates = _offered_options(question, prediction.head)
        if candidates:
            return max(candidates, key=lambda lp: lp[1])[0]
        return prediction.head[0][0]
    return prediction.generated


def _offered_options(question: str, head: tuple[tuple[str, float], ...]) -> list[tuple[str, float]]:
    """Head answers that appear as whole words in an alternative (" or ") question."""
    text = f" {normalize_answer(question)} "
    if " or " not in text:
        return []
    return [(label, p) for label, p in head if label and f" {label} " in text and label != "or"]
