"""Readers for radiology visual-question-answering data sets, giving one sample type.

Supported formats
-----------------
* **VQA-RAD** JSON (Lau et al. 2018): a list of objects with ``qid``, ``image_name``,
  ``question``, ``answer``, ``answer_type`` (``CLOSED``/``OPEN``), ``question_type``,
  ``image_organ``; images in ``images/`` beside the JSON (or in the given folder).
* **ImageCLEF VQA-Med** text: one ``image_id|question|answer`` line per sample
  (an optional fourth ``|category`` field is kept as the question type); images are
  ``<image_id>.jpg`` in the given image folder.
* **SLAKE** JSON (Liu et al. 2021): a list of objects with ``qid``, ``img_name``,
  ``question``, ``answer``, ``answer_type``, ``content_type``, ``location``, ``q_lang``;
  only English questions (``q_lang == "en"``) are read.

Answers are normalised with :func:`normalize_answer` so that exact match compares meaning
rather than typography.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lcid.errors import InputError

AnswerType = Literal["closed", "open"]

_YES = {"yes", "y", "yeah", "yep", "true", "correct", "present", "positive"}
_NO = {"no", "n", "nope", "false", "incorrect", "absent", "negative", "not present", "none seen"}
_ARTICLES = {"a", "an", "the"}
_PUNCT = re.compile(r"[^\w\s/+-]")
_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip


@dataclass(frozen=True)
class VQASample:
    """One question about one image.

    Attributes
    ----------
    qid
        Identifier unique within the data set file.
    image_path
        Path of the image file (checked to exist when read).
    question
        The question as written.
    answer
        The reference answer, normalised with :func:`normalize_answer`.
    answer_type
        ``"closed"`` (yes/no or a choice named in the question) or ``"open"``.
    question_type
        Category of the question (VQA-RAD: ``PRES``, ``POS``, ``ABN`` …), ``""`` if unknown.
    organ
        Body region (VQA-RAD: ``HEAD``, ``CHEST``, ``ABD``), ``""`` if unknown.
    phrase_type
        How the question was written (VQA-RAD: ``freeform``, ``para`` for a paraphrase of a
        free-form question, ``frame`` for a templated one), ``""`` if unknown.
    """

    qid: str
    image_path: Path
    question: str
    answer: str
    answer_type: AnswerType
    question_type: str = ""
    organ: str = ""
    phrase_type: str = ""


def normalize_answer(text: object) -> str:
    """Normalise an answer for training targets and exact-match scoring.

    Steps: convert to text; lower-case; strip surrounding white space; remove punctuation
    except ``/``, ``+`` and ``-`` (kept because they carry meaning: "t1/t2", "c-spine");
    drop the articles *a*, *an*, *the*; collapse white space; map number words zero–ten
    to digits; map yes-variants (*y*, *yeah*, *true*, *correct*, *present*, *positive*) to
    ``yes`` and no-variants (*n*, *nope*, *false*, *incorrect*, *absent*, *negative*) to
    ``no``.

    >>> normalize_answer(" Yes. ")
    'yes'
    >>> normalize_answer("The Left Lung")
    'left lung'
    >>> normalize_answer(2)
    '2'
    """
    words = _PUNCT.sub(" ", str(text).lower()).split()
    words = [_NUMBER_WORDS.get(w, w) for w in words if w not in _ARTICLES]
    joined = " ".join(words)
    if joined in _YES:
        return "yes"
    if joined in _NO:
        return "no"
    return joined


def _answer_type(raw: object, answer: str) -> AnswerType:
    text = str(raw or "").strip().lower()
    if text in ("closed", "open"):
        return text  # type: ignore[return-value]
    return "closed" if answer in ("yes", "no") else "open"


def _load_json_list(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read {path} ({exc.strerror or exc.__class__.__name__})") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    if not isinstance(data, list):
        raise InputError(f"{path} must hold a JSON list of question objects")
    return data


def _image(folder: Path, name: str, where: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise InputError(f"{where}: image {name} not found in {folder}")
    return path


def _field(item: dict, key: str, where: str) -> object:
    if not isinstance(item, dict) or key not in item or item[key] is None:
        raise InputError(f"{where}: missing field {key!r}")
    return item[key]


def _read_json_samples(
    json_path: Path, folder: Path, *, image_key: str, type_key: str, organ_key: str, english_only: bool = False
) -> list[VQASample]:
    """Samples of a JSON list whose field names differ between data sets."""
    samples = []
    for i, item in enumerate(_load_json_list(json_path)):
        where = f"{json_path.name} item {i}"
        if english_only and isinstance(item, dict) and str(item.get("q_lang", "en")) != "en":
            continue
        answer = normalize_answer(_field(item, "answer", where))
        samples.append(
            VQASample(
                qid=str(item.get("qid", i)),
                image_path=_image(folder, str(_field(item, image_key, where)), where),
                question=str(_field(item, "question", where)).strip(),
                answer=answer,
                answer_type=_answer_type(item.get("answer_type"), answer),
                question_type=str(item.get(type_key, "")).strip(),
                organ=str(item.get(organ_key, "")).strip(),
                phrase_type=str(item.get("phrase_type", "")).strip().lower(),
            )
        )
    return samples


def read_vqa_rad(json_path: str | Path, *, image_dir: str | Path | None = None) -> list[VQASample]:
    """Read a VQA-RAD JSON file (``trainset.json`` / ``testset.json``).

    Parameters
    ----------
    json_path
        The JSON file.
    image_dir
        Folder of the images; default ``images/`` beside the JSON file.

    Raises
    ------
    InputError
        On unreadable or malformed JSON, a missing field or a missing image.
    """
    json_path = Path(json_path)
    folder = Path(image_dir) if image_dir is not None else json_path.parent / "images"
    return _read_json_samples(json_path, folder, image_key="image_name", type_key="question_type",
                              organ_key="image_organ")


def read_slake(json_path: str | Path, *, image_dir: str | Path | None = None) -> list[VQASample]:
    """Read a SLAKE JSON file (English questions only).

    Parameters
    ----------
    json_path
        ``train.json`` / ``validate.json`` / ``test.json``.
    image_dir
        Folder holding the ``img_name`` paths; default ``imgs/`` beside the JSON file.
    """
    json_path = Path(json_path)
    folder = Path(image_dir) if image_dir is not None else json_path.parent / "imgs"
    return _read_json_samples(json_path, folder, image_key="img_name", type_key="content_type",
                              organ_key="location", english_only=True)


def read_vqa_med(
    text_path: str | Path, *, image_dir: str | Path, image_suffix: str = ".jpg"
) -> list[VQASample]:
    """Read ImageCLEF VQA-Med ``image_id|question|answer[|category]`` lines.

    Blank lines are skipped; any other line without at least three non-empty fields is an
    error naming its line number.
    """
    text_path = Path(text_path)
    folder = Path(image_dir)
    try:
        lines = text_path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read {text_path} ({exc.strerror or exc.__class__.__name__})") from exc
    samples = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("|")]
        if len(fields) < 3 or not all(fields[:3]):
            raise InputError(f"{text_path.name} line {number}: expected image|question|answer, got {line[:60]!r}")
        image_id, question, raw_answer = fields[:3]
        answer = normalize_answer(raw_answer)
        where = f"{text_path.name} line {number}"
        samples.append(
            VQASample(
                qid=f"{image_id}:{number}",
                image_path=_image(folder, image_id + image_suffix, where),
                question=question,
                answer=answer,
                answer_type=_answer_type(None, answer),
                question_type=fields[3] if len(fields) > 3 else "",
            )
        )
    return samples


VQAFormat = Literal["vqa-rad", "slake", "vqa-med"]


def read_vqa_split(
    data_dir: str | Path, *, split: Literal["train", "test"], data_format: VQAFormat = "vqa-rad"
) -> list[VQASample]:
    """Read the train or test split of a data set folder in its standard layout.

    ``vqa-rad``: ``trainset.json`` / ``testset.json`` + ``images/``; ``slake``:
    ``train.json`` / ``test.json`` + ``imgs/``; ``vqa-med``: ``train.txt`` / ``test.txt`` +
    ``images/``.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"data folder {data_dir} does not exist")
    if data_format == "vqa-rad":
        return read_vqa_rad(data_dir / f"{split}set.json")
    if data_format == "slake":
        return read_slake(data_dir / f"{split}.json")
    if data_format == "vqa-med":
        return read_vqa_med(data_dir / f"{split}.txt", image_dir=data_dir / "images")
    raise InputError(f"unknown VQA data format {data_format!r}; use vqa-rad, slake or vqa-med")
