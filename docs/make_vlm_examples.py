"""Sample answers of the shipped ``dwi`` model for docs/vlm.md, with small thumbnails in docs/img/.

Real, unmodified slices of the held-out Philips Achieva series, and held-out pictures of the
data set (simulated problems). Run from the repository root:

    python docs/make_vlm_examples.py runs/dwi-vlm-data-v4x
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lcid.io.nifti import load_dwi
from lcid.vlm.dwi.build import read_manifest
from lcid.vlm.dwi.native import native_problems
from lcid.vlm.inference import ask
from lcid.vlm.render import plane_axis, render_slice

ACHIEVA = Path("../shared/data/dwi/philips_achieva_dstream_15dir_b2000/WIP_dti_ax_601.nii.gz")
IMG = Path("docs/img")
ACQ = "15 directions, b = 0 to 2000"


def thumbnail(picture: np.ndarray, name: str) -> str:
    """Save a picture at most 160 px high; returns its docs-relative path."""
    img = Image.fromarray(picture)
    img.thumbnail((160, 160))
    path = IMG / name
    img.save(path, optimize=True)
    return f"img/{name}"


def main(data_dir: str) -> None:
    torch.set_num_threads(1)
    IMG.mkdir(exist_ok=True)
    out = []
    scan = load_dwi(ACHIEVA)
    # what lcid check measures in the series itself (data v4 labels it in coronal and sagittal pictures)
    native = [f"{e['problem']} ({e['severity']})" for e in native_problems(scan)]
    for plane, volume in (("axial", 1), ("coronal", 0), ("sagittal", 5)):
        index = scan.shape[plane_axis(scan.affine, plane)] // 2
        picture = render_slice(scan.data[..., volume], scan.affine, plane=plane, index=index)
        for acq in (None, ACQ):
            result = ask(picture, question="What is wrong with this image?", acq=acq)
            out.append({"thumb": thumbnail(picture, f"vlm_dwi_achieva_{plane}.png"), "what": f"real Achieva, {plane}, volume {volume}",
                        "acq": acq, "truth": (", ".join(native) if plane != "axial" and native else "none visible")
                        + (" (few_directions from the text)" if acq else ""),
                        **result})
    rows = read_manifest(data_dir, split="test")
    wanted = ["missing_slices", "ghosting", "noise", "fov_cutoff", "spikes", "low_resolution", "gibbs_ringing", "motion"]
    for problem in wanted:
        row = next((r for r in rows if r["labels"] == [problem] and not r["findings"]), None)
        if row is None:
            continue
        picture = np.asarray(Image.open(row["image"]))
        result = ask(picture, question=row["question"], acq=row["acq"])
        out.append({"thumb": thumbnail(picture, f"vlm_dwi_{problem}.png"),
                    "what": f"{row['source']}, {row['plane']}, simulated {problem} ({row['severities'][problem]})",
                    "acq": row["acq"], "truth": problem, "question": row["question"], **result})
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
