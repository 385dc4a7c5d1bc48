"""Make the example table of docs/vqa.md: small PNG thumbnails of a few VQA-RAD test images
(under docs/img/) and the shipped model's answers to their test questions.

Run from the repository root:  .venv/bin/python docs/make_vqa_examples.py
The original JPEGs stay in the shared data folder; only 128-px thumbnails are written.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

from lcid.io.vqa import read_vqa_split
from lcid.vlm.inference import ask

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "vqa_rad"
OUT = Path(__file__).resolve().parent / "img"
N_IMAGES = 4


def main() -> None:
    test = read_vqa_split(DATA, split="test")
    by_image: dict[Path, list] = {}
    for sample in test:
        by_image.setdefault(sample.image_path, []).append(sample)
    # the first images (in file-name order) of three organs, with at least two questions each
    chosen, organs = [], set()
    for path in sorted(by_image):
        samples = by_image[path]
        if len(samples) >= 2 and (samples[0].organ not in organs or len(chosen) >= 3):
            chosen.append(path)
            organs.add(samples[0].organ)
        if len(chosen) == N_IMAGES:
            break
    OUT.mkdir(exist_ok=True)
    rows = ["| image | question | reference | model answer |", "| --- | --- | --- | --- |"]
    for path in chosen:
        thumb = OUT / f"vqa_{path.stem}.png"
        with Image.open(path) as img:
            img.convert("L").resize((128, 128 * img.height // img.width)).save(thumb, optimize=True)
        for sample in by_image[path][:3]:
            answer = ask(path, question=sample.question, model="vqa-rad")["answer"]
            rows.append(f"| ![{path.stem}](img/{thumb.name}) | {sample.question} | {sample.answer} | {answer} |")
    sys.stdout.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
