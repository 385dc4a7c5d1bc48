"""Group-aware hold-out of VQA training questions and the answer-overlap measure."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lcid.errors import InputError
from lcid.io.vqa import VQASample, read_vqa_split
from lcid.io.vqa_holdout import answer_overlap, group_key, holdout_split
from tests.conftest import SHARED_DATA


def _q(i: int, image: str, answer: str, qtype: str = "PRES", phrase: str = "freeform",
       answer_type: str = "closed") -> VQASample:
    return VQASample(qid=str(i), image_path=Path(image), question=f"q{i}?", answer=answer,
                     answer_type=answer_type, question_type=qtype, phrase_type=phrase)  # type: ignore[arg-type]


def _questions() -> list[VQASample]:
    """40 images, each with a free-form question, its paraphrase (same answer) and a templated one."""
    out = []
    for img in range(40):
        answer = "yes" if img % 2 else "no"
        out += [_q(3 * img, f"{img}.jpg", answer), _q(3 * img + 1, f"{img}.jpg", answer, phrase="para"),
                _q(3 * img + 2, f"{img}.jpg", f"organ{img}", qtype="ORGAN", phrase="frame", answer_type="open")]
    return out


def test_group_holdout_keeps_paraphrases_together():
    samples = _questions()
    kept, out = holdout_split(samples, fraction=0.2, seed=0, groups=True)
    assert len(out) >= 24 and len(kept) + len(out) == len(samples)
    assert not {group_key(s) for s in kept} & {group_key(s) for s in out}
    assert answer_overlap(out, kept)["overall"] == 0.0
    # single questions at random: most held-out questions keep their paraphrase in training
    kept_r, out_r = holdout_split(samples, fraction=0.2, seed=0)
    assert len(out_r) == 24 and answer_overlap(out_r, kept_r)["closed"] > 0.5


def test_group_holdout_only_from_chosen_phrase_types():
    samples = _questions()
    kept, out = holdout_split(samples, fraction=0.2, seed=1, groups=True, phrase_types=["freeform", "para"])
    assert out and {s.phrase_type for s in out} == {"freeform", "para"}
    assert all(s in kept for s in samples if s.phrase_type == "frame")
    assert holdout_split(samples, fraction=0.2, seed=1, groups=True, phrase_types=["freeform", "para"])[1] == out
    assert holdout_split(samples, fraction=0.2, seed=2, groups=True, phrase_types=["freeform", "para"])[1] != out
    with pytest.raises(InputError, match="phrase type"):
        holdout_split(samples, fraction=0.5, seed=0, phrase_types=["frame"])


def test_answer_overlap_hand_made():
    train = [_q(0, "a.jpg", "yes"), _q(1, "b.jpg", "lung", answer_type="open")]
    held = [_q(2, "a.jpg", "yes"), _q(3, "a.jpg", "no"), _q(4, "b.jpg", "lung", answer_type="open"),
            _q(5, "a.jpg", "lung", answer_type="open")]
    got = answer_overlap(held, train)
    assert got["overall"] == pytest.approx(0.5) and got["closed"] == pytest.approx(0.5)
    assert got["open"] == pytest.approx(0.5) and (got["n"], got["n_closed"], got["n_open"]) == (4, 2, 2)
    assert math.isnan(answer_overlap([], train)["overall"])


@pytest.mark.integration
def test_vqa_rad_group_holdout_resembles_test_split():
    """The group hold-out's answer overlap is near the test split's; random questions' is far above it."""
    train = read_vqa_split(SHARED_DATA / "vqa_rad", split="train")
    test = read_vqa_split(SHARED_DATA / "vqa_rad", split="test")
    assert {s.phrase_type for s in test} == {"freeform", "para"}
    target = answer_overlap(test, train)["overall"]
    kept, out = holdout_split(train, fraction=0.15, seed=0, groups=True, phrase_types=["freeform", "para"])
    grouped = answer_overlap(out, kept)["overall"]
    kept, out = holdout_split(train, fraction=0.15, seed=0)
    random = answer_overlap(out, kept)["overall"]
    assert abs(grouped - target) < 0.06 < random - target
