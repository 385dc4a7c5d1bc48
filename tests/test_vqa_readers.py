"""VQA data set readers and answer normalisation."""

from __future__ import annotations

import json

import pytest

from lcid.errors import InputError
from lcid.io.vqa import normalize_answer, read_slake, read_vqa_med, read_vqa_rad, read_vqa_split
from tests.conftest import SHARED_DATA

VQA_RAD = SHARED_DATA / "vqa_rad"


@pytest.fixture
def image_dir(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (folder / name).write_bytes(b"\xff\xd8fake")
    return folder


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Yes", "yes"), (" yes. ", "yes"), ("Y", "yes"), ("NO!", "no"), ("false", "no"), ("The Left Lung", "left lung"),
     ("T1/T2", "t1/t2"), ("two", "2"), (3, "3"), ("an x-ray", "x-ray"), ("  Right   upper lobe ", "right upper lobe")],
)
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


def test_read_vqa_rad(tmp_path, image_dir):
    items = [
        {"qid": 1, "image_name": "a.jpg", "question": "Is it normal?", "answer": "Yes", "answer_type": "CLOSED",
         "question_type": "ABN", "image_organ": "HEAD"},
        {"qid": 2, "image_name": "b.jpg", "question": "Where?", "answer": "Left lung", "answer_type": "OPEN",
         "question_type": "POS", "image_organ": "CHEST"},
    ]
    path = tmp_path / "trainset.json"
    path.write_text(json.dumps(items))
    samples = read_vqa_rad(path)
    assert [s.answer for s in samples] == ["yes", "left lung"]
    assert [s.answer_type for s in samples] == ["closed", "open"]
    assert samples[1].organ == "CHEST" and samples[0].question_type == "ABN"
    assert samples[0].image_path == image_dir / "a.jpg"


def test_read_vqa_rad_errors(tmp_path, image_dir):
    path = tmp_path / "trainset.json"
    path.write_text(json.dumps([{"qid": 1, "image_name": "missing.jpg", "question": "q", "answer": "no"}]))
    with pytest.raises(InputError, match="missing.jpg not found"):
        read_vqa_rad(path)
    path.write_text(json.dumps([{"qid": 1, "image_name": "a.jpg", "answer": "no"}]))
    with pytest.raises(InputError, match="missing field 'question'"):
        read_vqa_rad(path)
    path.write_text("[{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_vqa_rad(path)
    path.write_text("{}")
    with pytest.raises(InputError, match="JSON list"):
        read_vqa_rad(path)


def test_read_vqa_med(tmp_path, image_dir):
    path = tmp_path / "train.txt"
    path.write_text("a|what modality is shown?|CT\n\nb|is this normal?|No|abnormality\n")
    samples = read_vqa_med(path, image_dir=image_dir)
    assert [(s.answer, s.answer_type) for s in samples] == [("ct", "open"), ("no", "closed")]
    assert samples[1].question_type == "abnormality"
    path.write_text("a|what modality is shown?|CT\nbroken line without fields\n")
    with pytest.raises(InputError, match="line 2"):
        read_vqa_med(path, image_dir=image_dir)
    path.write_text("zzz|what?|ct\n")
    with pytest.raises(InputError, match="zzz.jpg not found"):
        read_vqa_med(path, image_dir=image_dir)


def test_read_slake(tmp_path, image_dir):
    items = [
        {"qid": 7, "img_name": "a.jpg", "question": "Which organ?", "answer": "Liver", "answer_type": "OPEN",
         "content_type": "Organ", "location": "Abdomen", "q_lang": "en"},
        {"qid": 8, "img_name": "a.jpg", "question": "哪个器官?", "answer": "肝脏", "answer_type": "OPEN", "q_lang": "zh"},
    ]
    path = tmp_path / "train.json"
    path.write_text(json.dumps(items))
    samples = read_slake(path, image_dir=image_dir)
    assert len(samples) == 1 and samples[0].answer == "liver" and samples[0].organ == "Abdomen"


@pytest.mark.integration
def test_real_vqa_rad_splits():
    train = read_vqa_split(VQA_RAD, split="train")
    test = read_vqa_split(VQA_RAD, split="test")
    assert (len(train), len(test)) == (3064, 451)
    assert sum(s.answer_type == "closed" for s in test) == 272
    train_images = {s.image_path for s in train}
    assert len(train_images | {s.image_path for s in test}) == 314  # one of the 315 images has no question
    assert {s.image_path for s in test} <= train_images  # the documented caveat of this split


def test_read_split_missing_folder(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_vqa_split(tmp_path / "nope", split="train")
