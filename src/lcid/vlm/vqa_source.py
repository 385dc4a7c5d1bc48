"""VQA data sets as model examples: prompts, answers and the head's answer vocabulary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from lcid.io.vqa import VQASample
from lcid.vlm.data import VLMExample
from lcid.vlm.image import load_image
from lcid.vlm.prompt import build_prompt


def answer_vocabulary(samples: Sequence[VQASample], *, min_count: int = 1) -> tuple[str, ...]:
    """Answers seen at least ``min_count`` times, most frequent first (ties alphabetical)."""
    counts = Counter(s.answer for s in samples)
    return tuple(a for a, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count)


def vqa_examples(samples: Sequence[VQASample]) -> tuple[list[VLMExample], dict[str, np.ndarray]]:
    """One example per question, and each distinct image loaded once (key: its path)."""
    images: dict[str, np.ndarray] = {}
    examples = []
    for s in samples:
        key = str(s.image_path)
        if key not in images:
            images[key] = load_image(s.image_path)
        examples.append(VLMExample(image_key=key, prompt=build_prompt(s.question), answer=s.answer, labels=(s.answer,)))
    return examples, images
