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
    use_cache: bool = True,
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
    use_cache
        Greedy decoding with the language model's key-value cache: the prompt runs once and
        each new token alone goes through the model. ``False`` reruns the whole sequence for
        every token (same answers, slower; kept to check the cache against).
    """
    model.eval()
    tok = model.tokenizer
    assert tok is not None, "model has no tokenizer"
    cfg = model.cfg
    encoded = [encode_example(tok, p, None, max_length=cfg.max_length - max_new_tokens)[0] for p in prompts]
    lengths = torch.tensor([len(e) for e in encoded])
    # the uncached loop writes each new token into the padded sequence; the cached one needs only the prompt
    width = int(lengths.max()) + (0 if use_cache else max_new_tokens)
    ids = torch.full((len(prompts), width), tok.pad_id, dtype=torch.long)
    for row, e in enumerate(encoded):
        ids[row, : len(e)] = torch.tensor(e)
    latents = model.encode_images(pixels)
    mask = (torch.arange(width)[None] < lengths[:, None]).long()
    out = model(None, ids, mask, head_positions=lengths - 1, latents=latents, use_cache=use_cache and max_new_tokens > 0)
    heads = _head(model, out.get("head_logits"), top_k=top_k, n=len(prompts))
    rows = torch.arange(len(prompts))
    first = out["logits"][rows, lengths - 1].argmax(dim=-1)
    if use_cache:
        generated = _generate_cached(model, out, first, mask, lengths, latents, max_new_tokens=max_new_tokens)
    else:
        generated = _generate_uncached(model, first, ids, lengths, latents, max_new_tokens=max_new_tokens)
    return [Prediction(generated=tok.decode(g).strip(), head=h) for g, h in zip(generated, heads, strict=True)]


def _generate_cached(
    model: FlamingoVLM,
    out: dict,
    next_ids: torch.Tensor,
    mask: torch.Tensor,
    lengths: torch.Tensor,
    latents: torch.Tensor,
    *,
    max_new_tokens: int,
) -> list[list[int]]:
    """Greedy tokens, one new token per step through the model with the prompt's key-value cache.

    Prompts are right-padded: each row's new token gets position ``length + step`` and the
    mask hides the padding in the cache, so every row sees what the uncached loop shows it.
    """
    eos = model.tokenizer.eos_id
    generated: list[list[int]] = [[] for _ in range(len(lengths))]
    finished = torch.zeros(len(lengths), dtype=torch.bool)
    positions = lengths.clone()
    for step in range(max_new_tokens):
        finished |= next_ids == eos
        for row in torch.nonzero(~finished).flatten().tolist():
            generated[row].append(int(next_ids[row]))
        if bool(finished.all()) or step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        out = model(None, next_ids[:, None], mask, latents=latents, past_key_values=out["past_key_values"],
                    position_ids=positions[:, None], use_cache=True)
        positions = positions + 1
        next_ids = out["logits"][:, -1].argmax(dim=-1)
    return generated


def _generate_uncached(
    model: FlamingoVLM,
    next_ids: torch.Tensor,
    ids: torch.Tensor,
    lengths: torch.Tensor,
    latents: torch.Tensor,
    *,
    max_new_tokens: int,
) -> list[list[int]]:
    """Greedy tokens, rerunning the whole padded sequence for every new token (the reference)."""
    eos = model.tokenizer.eos_id
    rows = torch.arange(len(lengths))
    width = ids.shape[1]
    generated: list[list[int]] = [[] for _ in range(len(lengths))]
    finished = torch.zeros(len(lengths), dtype=torch.bool)
    current = lengths.clone()
    for step in range(max_new_tokens):
        if step > 0:
            mask = (torch.arange(width)[None] < current[:, None]).long()
            next_ids = model(None, ids, mask, latents=latents)["logits"][rows, current - 1].argmax(dim=-1)
        for row in range(len(lengths)):
            if finished[row]:
                continue
            token = int(next_ids[row])
            if token == eos:
                finished[row] = True
            else:
                generated[row].append(token)
                ids[row, current[row]] = token
                current[row] += 1
        if bool(finished.all()):
            break
    return generated


def detected(model: FlamingoVLM, prediction: Prediction) -> tuple[str, ...]:
    """Labels of a multi-label head at or above the model's decision threshold for each
    (:meth:`FlamingoVLM.threshold`: chosen on validation data and saved with the model, else 0.5),
    most probable first; empty for other heads."""
    if model.cfg.head != "multilabel":
        return ()
    return tuple(label for label, p in prediction.head if p >= model.threshold(label))


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
    [
        "is", "are", "was", "were", "does", "do", "did", "can", "could", "has", "have", "had", "will",
        "would", "should", "shall", "may", "might", "am", "isn't", "aren't", "doesn't", "don't", "wasn't",
    ]
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
    A multi-label (DWI) head's problems at the model's thresholds are what the answer names:
    :func:`lcid.vlm.dwi.text.grounded_answer`. Without a head, the generated text.
    """
    if model.cfg.head == "multilabel" and prediction.head:
        from lcid.vlm.dwi.text import grounded_answer

        return grounded_answer(question, prediction.generated, detected(model, prediction))
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
