"""VQA metrics on hand-made examples with known values."""

from __future__ import annotations

import math

import pytest

from lcid.io.vqa import VQASample
from lcid.metrics.text import corpus_bleu, embedding_cosine
from lcid.metrics.vqa import accuracy, exact_match, grouped_accuracy, majority_answers
from lcid.vlm.evaluate import score


def test_bleu_known_values():
    assert corpus_bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(1.0)
    assert corpus_bleu(["the the the"], ["the cat"], max_n=1) == pytest.approx(1 / 3)
    # brevity penalty: 1 hypothesis word against 2 reference words -> exp(1 - 2/1)
    assert corpus_bleu(["cat"], ["the cat"], max_n=1) == pytest.approx(math.exp(-1))
    # BLEU-2: unigram 3/3, bigram 1/2 -> sqrt(0.5); brevity exp(1 - 4/3)
    assert corpus_bleu(["left upper lobe"], ["left upper lung lobe"], max_n=2) == pytest.approx(
        math.exp(1 - 4 / 3) * math.sqrt(0.5))
    assert corpus_bleu(["yes"], ["no"], max_n=1) == 0.0
    assert corpus_bleu(["yes"], ["yes"], max_n=2) == 0.0  # no bigrams to match, no smoothing


def test_exact_match_and_groups():
    correct = exact_match(["yes", "no", "left lung"], ["yes", "yes", "left lung"])
    assert correct == [True, False, True]
    assert accuracy(correct) == pytest.approx(2 / 3)
    groups = grouped_accuracy(correct, ["closed", "closed", "open"])
    assert groups == {"closed": {"accuracy": 0.5, "n": 2}, "open": {"accuracy": 1.0, "n": 1}}
    assert majority_answers(["yes", "no", "no", "ct"], ["closed", "closed", "closed", "open"]) == {"closed": "no",
                                                                                                 "open": "ct"}


def test_score_by_answer_type(tmp_path):
    def sample(answer, kind, qtype="PRES"):
        return VQASample(qid="1", image_path=tmp_path, question="q", answer=answer, answer_type=kind,
                         question_type=qtype, organ="HEAD")

    test = [sample("yes", "closed"), sample("no", "closed"), sample("left lung", "open", "POS")]
    train = [sample("no", "closed"), sample("no", "closed"), sample("yes", "closed"), sample("axial", "open")]
    result = score(test, ["Yes", "yes", "left lung"], train_samples=train, embeddings=False)
    assert result["closed_accuracy"] == 0.5 and result["open_accuracy"] == 1.0
    assert result["overall_accuracy"] == pytest.approx(2 / 3)
    assert result["majority_baseline_overall"] == pytest.approx(1 / 3)
    assert result["by_question_type"]["POS"] == {"accuracy": 1.0, "n": 1}


@pytest.mark.slow
def test_embedding_cosine_minilm(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sims = embedding_cosine(["left lung", "left lung", "yes"], ["left lung", "the left lung", "kidney"])
    assert sims[0] == pytest.approx(1.0, abs=1e-5)
    assert sims[1] > 0.8 and sims[2] < 0.5
