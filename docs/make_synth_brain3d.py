"""The 3D run of docs/synth.md: build the volumes, train configs/synth/brain3d.yaml, sample, score, draw.

Run from the repository root after ``docs/make_synth_brain3d.sh`` (links the shared brain DWI
series into runs/brain3d-data)::

    .venv/bin/python docs/make_synth_brain3d.py --images-cache runs/brain3d-volumes.pt [--stage all]

Volumes: b0 + mean DWI of each DWI series under the config's data path, and of ``--phantoms``
``lcid`` phantom brains, each with its own random anatomy (``Anatomy.random``, seed = index) and
SNR, all through the MONAI chain of :mod:`lcid.synth.preprocess`. Whole sources (both volumes of a
series or phantom) are held out (``--held-out``): stage 1 is scored on them and the samples are
compared with them. ``--stage`` runs ``data``, ``autoencoder``, ``ldm``, ``eval`` or ``all`` (each
resumes from the previous stage's saved output). Writes docs/img/synth_brain3d.png (``--figure``),
the config's ``out_dir``/eval.json and the drawn samples (``samples.pt``).

A class-conditional config (``ldm.spec.conditioning: class``, as ``configs/synth/brain3d_cond.yaml``)
labels each volume by source and image type (:func:`volume_class`: ``real_b0``, ``real_dwi``,
``phantom_b0``, ``phantom_dwi``); the figure then shows samples drawn for the real classes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from lcid.synth.data import ImageSet
from lcid.synth.recipe import Recipe

ROOT = Path(__file__).resolve().parents[1]
FIGURE = ROOT / "docs" / "img" / "synth_brain3d.png"
HELD_OUT = ("philips_achieva_dstream_15dir_b2000", "phantom_08", "phantom_09")


def phantom_volumes(index: int, *, voxel_mm: tuple[float, ...], shape: tuple[int, ...]) -> torch.Tensor:
    """b0 + mean DWI ``(2, 1, *shape)`` of phantom ``index``: anatomy and SNR drawn with seed ``index``."""
    from monai.utils import convert_to_tensor

    from lcid.simulate.phantom import Anatomy, default_scheme, make_phantom
    from lcid.synth.preprocess import brain_volumes, volume_transform

    rng = np.random.default_rng(index)
    anatomy = Anatomy.random(rng)
    bvals, bvecs = default_scheme()
    keep = bvals <= 1000  # b0s + the b = 1000 shell: mean DWI like the real b = 1000-2500 series
    scan = make_phantom(shape=(72, 84, 64), voxel_mm=2.0, bvals=bvals[keep], bvecs=bvecs[keep],
                        snr=float(rng.uniform(12, 40)), seed=index, anatomy=anatomy)
    transform = volume_transform(voxel_mm=voxel_mm, shape=shape)
    return torch.stack([convert_to_tensor(transform(item)["image"], track_meta=False) for item in brain_volumes(scan.data, scan.bvals, scan.affine)]).float()


def build_volumes(recipe: Recipe, *, phantoms: int) -> dict[str, torch.Tensor]:
    """``{source: (2, 1, *shape)}`` for every DWI series under the data path and ``phantoms`` phantoms."""

    d = recipe.data
    voxel_mm, shape = tuple(d["voxel_mm"]), tuple(d["shape"])
    out: dict[str, torch.Tensor] = {}
    for folder in sorted(p for p in Path(d["path"]).iterdir() if p.is_dir() and not p.name.startswith("phantom")):
        for path in sorted(folder.glob("*.nii*")):  # one source per run (the Siemens AP and PA runs are two)
            run = path.name.split(".nii")[0]
            out[f"{folder.name}/{run}" if len(list(folder.glob('*.nii*'))) > 1 else folder.name] = _one_series(path, voxel_mm, shape)
    for k in range(phantoms):
        out[f"phantom_{k:02d}"] = phantom_volumes(k, voxel_mm=voxel_mm, shape=shape)
    return out


def _one_series(path: Path, voxel_mm, shape) -> torch.Tensor:
    from monai.utils import convert_to_tensor

    from lcid.io.nifti import load_dwi
    from lcid.synth.preprocess import brain_volumes, volume_transform

    scan = load_dwi(path)
    transform = volume_transform(voxel_mm=voxel_mm, shape=shape)
    return torch.stack([convert_to_tensor(transform(item)["image"], track_meta=False) for item in brain_volumes(scan.data, scan.bvals, scan.affine)]).float()


#: Per source, :func:`brain_volumes` gives the b0 first, then the mean DWI.
VOLUME_TYPES = ("b0", "dwi")


def volume_class(source: str, index: int) -> str:
    """Class name of volume ``index`` of ``source``: ``{real|phantom}_{b0|dwi}``."""
    return f"{'phantom' if source.startswith('phantom') else 'real'}_{VOLUME_TYPES[index]}"


def split(
    volumes: dict[str, torch.Tensor], held_out: tuple[str, ...], classes: tuple[str, ...] = ()
) -> tuple[ImageSet, ImageSet]:
    """Training and held-out sets; a source is held out when its name starts with one of ``held_out``.
    With ``classes``, each volume is labelled with the index of its :func:`volume_class`."""
    test = [k for k in volumes if k.startswith(held_out)]
    train = [k for k in volumes if k not in test]

    def image_set(sources: list[str]) -> ImageSet:
        images = torch.cat([volumes[k] for k in sources])
        if not classes:
            return ImageSet(images)
        names = [volume_class(k, i) for k in sources for i in range(len(volumes[k]))]
        return ImageSet(images, labels=torch.tensor([classes.index(name) for name in names]))

    return image_set(train), image_set(test)


def oversample_real(train: ImageSet, volumes: dict[str, torch.Tensor], held_out: tuple[str, ...], repeat: int) -> ImageSet:
    """``train`` with the real (non-phantom) training volumes ``repeat`` times in all (unconditional data only),
    so that stage 2 sees the two real subjects about as often as the ten phantom anatomies."""
    if repeat <= 1:
        return train
    if train.labels is not None:
        raise SystemExit("--real-repeat is for unconditional configs")
    real = [volumes[k] for k in volumes if not k.startswith(held_out) and not k.startswith("phantom")]
    return ImageSet(torch.cat([train.images, *([torch.cat(real)] * (repeat - 1))]))


def nearest_mse(volumes: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean over ``volumes`` of the MSE to the closest ``reference`` volume (a copy check: samples that only
    repeat training volumes sit much closer to them than held-out real volumes do)."""
    distances = ((volumes[:, None] - reference[None]) ** 2).flatten(2).mean(-1)
    return float(distances.min(1).values.mean())


def mid_slices(volume: np.ndarray) -> list[np.ndarray]:
    """Axial, coronal and sagittal middle slices of an RAS volume ``(X, Y, Z)``, displayed upright."""
    x, y, z = (s // 2 for s in volume.shape)
    return [np.rot90(volume[:, :, z]), np.rot90(volume[:, y, :]), np.rot90(volume[x, :, :])]


def figure(rows: list[tuple[str, torch.Tensor]], path: Path) -> None:
    """One row per volume: label and its three mid-slices."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 3, figsize=(4.2, 1.45 * len(rows)), squeeze=False)
    for row, (name, volume) in enumerate(rows):
        for col, (view, image) in enumerate(zip(("axial", "coronal", "sagittal"), mid_slices(volume[0].numpy()), strict=True)):
            ax = axes[row, col]
            ax.imshow(image, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(view, fontsize=8)
            if col == 0:
                ax.set_ylabel(name, fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sample_grid(samples: torch.Tensor, passed: np.ndarray, path: Path, *, per_row: int = 2) -> None:
    """Every sample's three mid-slices, ``per_row`` samples side by side, each titled with its head-shape verdict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = -(-len(samples) // per_row)
    fig, axes = plt.subplots(rows, 3 * per_row, figsize=(1.2 * 3 * per_row, 1.25 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for i, volume in enumerate(samples):
        for view, image in enumerate(mid_slices(volume[0].numpy())):
            ax = axes[i // per_row, 3 * (i % per_row) + view]
            ax.imshow(image, cmap="gray", vmin=0, vmax=1)
            if view == 0:
                ax.set_title(f"sample {i} ({'pass' if passed[i] else 'fail'})", fontsize=7, loc="left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "synth" / "brain3d.yaml")
    parser.add_argument("--images-cache", type=Path, default=None, help="Save/reuse the preprocessed volumes here.")
    parser.add_argument("--phantoms", type=int, default=10, help="Phantom brains of varied anatomy.")
    parser.add_argument("--held-out", nargs="*", default=list(HELD_OUT), help="Source-name prefixes to hold out.")
    parser.add_argument("--stage", choices=("data", "autoencoder", "ldm", "eval", "all"), default="all")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n", type=int, default=20, help="Samples to draw (Fréchet on as many as held-out volumes; MS-SSIM and head shape on all).")
    parser.add_argument("--figure", type=Path, default=FIGURE, help="Where the mid-slice figure goes.")
    parser.add_argument("--show", type=int, default=6, help="Samples shown in the figure (the first ones drawn).")
    parser.add_argument("--sampler", choices=("ddim", "ddpm"), default="ddim", help="ddim: 50 steps; ddpm: all 1000 steps.")
    parser.add_argument("--real-repeat", type=int, default=1, help="Stage 2 sees each real training volume this many times.")
    parser.add_argument("--guidance", type=float, default=3.0, help="Classifier-free guidance scale (class-conditional configs).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipe = Recipe.load(args.config)
    if args.images_cache is not None and args.images_cache.is_file():
        volumes = torch.load(args.images_cache)
    else:
        volumes = build_volumes(recipe, phantoms=args.phantoms)
        if args.images_cache is not None:
            torch.save(volumes, args.images_cache)
    spec = recipe.ldm.get("spec", {})
    classes = tuple(spec.get("classes", ())) if spec.get("conditioning") == "class" else ()
    train, test = split(volumes, tuple(args.held_out), classes)
    print(f"{len(train)} training and {len(test)} held-out volumes {tuple(train.images.shape[2:])} from {len(volumes)} sources", flush=True)
    from lcid.synth.model import load_model
    from lcid.synth.training import train_autoencoder, train_ldm

    if args.stage in ("autoencoder", "all"):
        train_autoencoder(recipe, data=train, held_out=test)
        print(json.dumps(load_model(recipe.stage_dir("autoencoder") / "model").meta["stage1_metrics"], indent=2), flush=True)
    if args.stage in ("ldm", "all"):
        train_ldm(recipe, data=oversample_real(train, volumes, tuple(args.held_out), args.real_repeat))
    if args.stage in ("eval", "all"):
        from lcid.synth.evaluation import evaluate
        from lcid.synth.head_shape import head_shape

        model = load_model(recipe.model_dir)
        steps = 50 if args.sampler == "ddim" else model.diffusion_spec.num_train_timesteps
        requested = None
        if classes:  # the held-out volumes' classes first (for the Fréchet distance), then the real classes in turn
            real_classes = torch.tensor([i for i, c in enumerate(classes) if c.startswith("real")])
            rest = real_classes[torch.arange(args.n - len(test)) % len(real_classes)]
            requested = torch.cat([test.labels, rest])
        samples = model.sample(args.n, condition=requested, guidance=args.guidance, sampler=args.sampler, steps=steps,
                               seed=recipe.seed)
        suffix = "" if args.sampler == "ddim" else f"_{args.sampler}"
        names = sorted(volumes)
        shown = [next(k for k in names if k.startswith(prefix)) for prefix in ("philips_elition", "siemens", "phantom_00", HELD_OUT[0])]
        labels = ("real Elition", "real Prisma", "phantom", "held-out Achieva")
        real = [(label, volumes[k][1 if "Prisma" not in label else 0]) for label, k in zip(labels, shown, strict=True)]
        passed = head_shape(samples, train.images).passed
        order = list(range(len(samples)))
        if requested is not None:  # show samples of the real classes
            order = [i for i in order if classes[int(requested[i])].startswith("real")]
        def name(i: int) -> str:
            drawn_for = "" if requested is None else f" {classes[int(requested[i])]}"
            return f"sample {i}{drawn_for} ({'pass' if passed[i] else 'fail'})"

        shown_samples = [(name(i), samples[i]) for i in order[: args.show]]
        figure(real + shown_samples, args.figure.with_stem(args.figure.stem + suffix))
        sample_grid(samples, passed, args.figure.with_stem(args.figure.stem + suffix + "_all"))
        metrics = evaluate(model, train, test, n=args.n, guidance=args.guidance, sampler=args.sampler, steps=steps,
                           seed=recipe.seed, samples=samples, requested=requested)
        if requested is not None:  # head shape per requested class
            for i, name in enumerate(classes):
                chosen = requested == i
                if bool(chosen.any()):
                    metrics[f"head_shape_pass_{name}"] = float(passed[chosen.numpy()].mean())
        metrics.update(
            train_volumes=float(len(train)),
            held_out_volumes=float(len(test)),
            nearest_train_mse_samples=nearest_mse(samples, train.images),
            nearest_train_mse_held_out=nearest_mse(test.images, train.images),
        )
        text = json.dumps(metrics, indent=2)
        (Path(recipe.out_dir) / f"eval{suffix}.json").write_text(text + "\n")
        torch.save(samples, Path(recipe.out_dir) / f"samples{suffix}.pt")
        print(text)


if __name__ == "__main__":
    main()
