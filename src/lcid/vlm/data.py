"""Training examples from any source, as token tensors with cached images.

A source (VQA data sets now, rendered DWI slices with acquisition text later) gives
:class:`VLMExample` objects that name an image by key, plus the images themselves; the
:class:`VLMDataset` scales every image once and tokenises every example once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from lcid.vlm.augment import AugmentSettings, random_augment
from lcid.vlm.image import to_model_input
from lcid.vlm.tokenizer import VLMTokenizer


@dataclass(frozen=True)
class VLMExample:
    """One prompt/answer pair about one image.

    Attributes
    ----------
    image_key
        Key of the image in the image table.
    prompt
        Text before the answer (see :func:`lcid.vlm.prompt.build_prompt`).
    answer
        The reference answer the LM learns to generate.
    labels
        Head targets: one class name (multiclass) or the present problems (multilabel);
        names not among the head's labels are ignored.
    """

    image_key: str
    prompt: str
    answer: str
    labels: tuple[str, ...] = ()


def encode_example(
    tokenizer: VLMTokenizer, prompt: str, answer: str | None, *, max_length: int
) -> tuple[list[int], int]:
    """``<bos> prompt [ answer <eos>]`` token ids and the index of the last prompt token.

    When too long, the start of the prompt is dropped (the question sits at its end) and
    the answer is cut to leave room for at least 8 prompt tokens.
    """
    prompt_ids = tokenizer.encode(prompt)
    answer_ids = [] if answer is None else tokenizer.encode(" " + answer) + [tokenizer.eos_id]
    answer_ids = answer_ids[: max(1, max_length - 9)]
    room = max_length - 1 - len(answer_ids)
    prompt_ids = prompt_ids[-room:]
    return [tokenizer.bos_id, *prompt_ids, *answer_ids], len(prompt_ids)


class VLMDataset(Dataset):
    """Examples as tensors; images scaled once to ``(1, size, size)``.

    Items are dicts with ``pixels``, ``input_ids``, ``labels`` (-100 outside the answer),
    ``head_position`` and ``head_target`` (class index, -100 when unknown; or a multi-hot
    vector for ``multilabel``); with ``image_targets`` also ``aux_targets``.

    Parameters
    ----------
    augment
        ``True``: random translation up to 6 % of the side and ±10 % contrast (the original
        recipe); an :class:`~lcid.vlm.augment.AugmentSettings`: those ranges; ``False``: none.
    image_targets
        Image-level auxiliary targets: for each image key, one class index per auxiliary
        head (-100 where unknown); images not listed get -100 everywhere. Leave empty
        when the model has no auxiliary heads.
    """

    def __init__(
        self,
        examples: Sequence[VLMExample],
        images: Mapping[str, np.ndarray],
        tokenizer: VLMTokenizer,
        *,
        image_size: int,
        max_length: int,
        head_labels: Sequence[str] = (),
        head: str = "multiclass",
        augment: bool | AugmentSettings = False,
        image_targets: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        keys = sorted({e.image_key for e in examples})
        self.pixels = {k: to_model_input(images[k], size=image_size) for k in keys}
        index = {name: i for i, name in enumerate(head_labels)}
        self.items = []
        for e in examples:
            ids, last = encode_example(tokenizer, e.prompt, e.answer, max_length=max_length)
            labels = [-100] * (last + 1) + ids[last + 1 :]
            if head == "multilabel":
                target: torch.Tensor = torch.zeros(len(head_labels))
                for name in e.labels:
                    if name in index:
                        target[index[name]] = 1.0
            else:
                target = torch.tensor(index.get(e.labels[0], -100) if e.labels else -100)
            self.items.append((e.image_key, torch.tensor(ids), torch.tensor(labels), last, target))
        self.pad_id = tokenizer.pad_id
        self.augment = augment
        self.image_targets: dict[str, torch.Tensor] = {}
        if image_targets:
            n_aux = len(next(iter(image_targets.values())))
            unknown = torch.full((n_aux,), -100, dtype=torch.long)
            self.image_targets = {
                k: torch.tensor(list(image_targets[k]), dtype=torch.long) if k in image_targets else unknown
                for k in keys
            }

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        key, ids, labels, last, target = self.items[i]
        pixels = self.pixels[key]
        if isinstance(self.augment, AugmentSettings):
            pixels = random_augment(pixels, self.augment)
        elif self.augment:
            pixels = _augment(pixels)
        item = {"pixels": pixels, "input_ids": ids, "labels": labels, "head_position": torch.tensor(last),
                "head_target": target}
        if self.image_targets:
            item["aux_targets"] = self.image_targets[key]
        return item

    def collate(self, batch: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Stack a batch, right-padding token sequences."""
        length = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), length), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), length), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), length), dtype=torch.long)
        for row, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[row, :n], labels[row, :n], mask[row, :n] = b["input_ids"], b["labels"], 1
        out = {
            "pixels": torch.stack([b["pixels"] for b in batch]),
            "input_ids": ids,
            "attention_mask": mask,
            "labels": labels,
            "head_position": torch.stack([b["head_position"] for b in batch]),
            "head_target": torch.stack([b["head_target"] for b in batch]),
        }
        if "aux_targets" in batch[0]:
            out["aux_targets"] = torch.stack([b["aux_targets"] for b in batch])
        return out


def _augment(pixels: torch.Tensor) -> torch.Tensor:
    """Random whole-pixel shift (zero fill) and contrast; draws from torch's global generator.

    The original augmentation, kept so that existing recipes retrain the same way; new
    recipes name :class:`~lcid.vlm.augment.AugmentSettings` instead.

    No flips: left/right carries meaning in radiology answers.
    """
    side = pixels.shape[-1]
    limit = max(1, int(0.06 * side))
    dy, dx = (int(v) for v in torch.randint(-limit, limit + 1, (2,)))
    shifted = torch.roll(pixels, shifts=(dy, dx), dims=(-2, -1))
    if dy > 0:
        shifted[..., :dy, :] = 0
    elif dy < 0:
        shifted[..., dy:, :] = 0
    if dx > 0:
        shifted[..., :dx] = 0
    elif dx < 0:
        shifted[..., dx:] = 0
    gain = 1.0 + 0.2 * (float(torch.rand(())) - 0.5)
    return (shifted * gain).clamp(0.0, 1.0)
