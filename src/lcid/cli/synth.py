"""``lcid train autoencoder|ldm``, ``lcid generate`` and ``lcid eval synth``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from lcid.cli import command_group
from lcid.errors import InputError


def register(app: typer.Typer) -> None:
    train = command_group(app, "train", "Train models.")
    train.command("autoencoder")(train_autoencoder_command)
    train.command("ldm")(train_ldm_command)
    app.command("generate")(generate_command)
    command_group(app, "eval", "Evaluate models.").command("synth")(eval_synth_command)


def train_autoencoder_command(
    config: Path = typer.Option(..., "--config", help="Training recipe (YAML), e.g. configs/synth/pneumoniamnist.yaml."),
    threads: int = typer.Option(2, help="CPU threads for torch."),
) -> None:
    """Train stage 1 (KL autoencoder or VQ-VAE); resumes from the run's last checkpoint."""
    _train("autoencoder", config, threads)


def train_ldm_command(
    config: Path = typer.Option(..., "--config", help="Training recipe (YAML); stage 1 must be trained."),
    threads: int = typer.Option(2, help="CPU threads for torch."),
) -> None:
    """Train stage 2 (latent diffusion) on the trained autoencoder's latents."""
    _train("ldm", config, threads)


def _train(stage: str, config: Path, threads: int) -> None:
    from lcid.cli import fail, use_threads
    from lcid.synth.recipe import Recipe
    from lcid.synth.training import train_autoencoder, train_ldm

    use_threads(threads)
    try:
        recipe = Recipe.load(config)
        target = train_autoencoder(recipe) if stage == "autoencoder" else train_ldm(recipe)
    except InputError as exc:
        fail(str(exc))
    typer.echo(f"model saved to {target}")


def generate_command(
    model: str = typer.Option(..., "--model", help="Built-in model name (pneumoniamnist) or model folder."),
    n: int = typer.Option(16, "--n", help="Number of images."),
    condition: str | None = typer.Option(None, "--condition", help="Class name/index, or covariates 'age=70,sex=1'."),
    out: Path = typer.Option(Path("lcid_samples"), "--out", "-o", help="Output folder."),
    guidance: float = typer.Option(3.0, help="Classifier-free guidance scale (1 = none)."),
    sampler: str = typer.Option("ddim", help="ddim or ddpm."),
    steps: int = typer.Option(50, help="Sampling steps (DDIM)."),
    seed: int = typer.Option(0, help="Random seed of the starting noise."),
    threads: int = typer.Option(2, help="CPU threads for torch."),
) -> None:
    """Generate images: PNG (2D) or NIfTI (3D) files plus contact_sheet.png and generate.json."""
    from lcid.cli import fail, use_threads
    from lcid.io.atomic import atomic_dir
    from lcid.synth.conditioning import parse_condition
    from lcid.synth.export import contact_sheet, write_samples
    from lcid.synth.model import load_model

    use_threads(threads)
    if n < 1:
        fail("--n must be at least 1")
    try:
        synth = load_model(model)
        if synth.diffusion_spec is None:
            raise InputError(f"{model} has no diffusion stage")
        cond = parse_condition(synth.diffusion_spec, condition, n)
        images = synth.sample(n, condition=cond, guidance=guidance, sampler=sampler, steps=steps, seed=seed, progress=True)
        voxel = synth.meta.get("data", {}).get("voxel_mm")
        with atomic_dir(out) as tmp:
            write_samples(images, tmp, voxel_mm=tuple(voxel) if voxel else None)
            contact_sheet(images, tmp / "contact_sheet.png")
            record = {"model": model, "n": n, "condition": condition, "guidance": guidance, "sampler": sampler, "steps": steps, "seed": seed}
            (tmp / "generate.json").write_text(json.dumps(record, indent=2) + "\n")
    except InputError as exc:
        fail(str(exc))
    typer.echo(f"{n} images written to {out}")


def eval_synth_command(
    model: str = typer.Option(..., "--model", help="Built-in model name or model folder."),
    data: Path = typer.Option(..., "--data", help="Real data: the PneumoniaMNIST folder, or a folder of NIfTI volumes."),
    n: int = typer.Option(400, "--n", help="Samples to generate (and real images to compare)."),
    guidance: float = typer.Option(3.0, help="Classifier-free guidance scale."),
    steps: int = typer.Option(50, help="Sampling steps (DDIM), or steps of the training schedule (DDPM)."),
    sampler: str = typer.Option("ddim", help="Sampler: ddim or ddpm."),
    seed: int = typer.Option(0, help="Random seed."),
    json_out: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    threads: int = typer.Option(2, help="CPU threads for torch."),
) -> None:
    """Score samples against real images (Fréchet distance on a small real-data classifier, NOT Inception FID)."""
    from lcid.cli import fail, use_threads
    from lcid.synth.data import load_dataset
    from lcid.synth.evaluation import evaluate
    from lcid.synth.model import load_model

    use_threads(threads)
    if sampler not in ("ddim", "ddpm"):
        fail(f"unknown sampler {sampler!r}: choose ddim or ddpm")
    try:
        synth = load_model(model)
        d = synth.meta.get("data", {})
        kind = d.get("kind", "pneumoniamnist")
        opts = {
            "size": int(d.get("size", 32)),
            "voxel_mm": tuple(d.get("voxel_mm", (2, 2, 2))),
            "shape": tuple(d.get("shape", (64, 64, 64))),
        }
        if kind == "pneumoniamnist":
            train, test = load_dataset(kind, data, split="train", **opts), load_dataset(kind, data, split="test", **opts)
        else:
            from lcid.synth.data import split_in_two

            train, test = split_in_two(load_dataset(kind, data, **opts), seed=seed)
        metrics = evaluate(synth, train, test, n=n, guidance=guidance, steps=steps, seed=seed, sampler=sampler)
    except InputError as exc:
        fail(str(exc))
    if json_out:
        typer.echo(json.dumps(metrics, indent=2))
        return
    typer.echo("Fréchet distances use features of a small CNN trained on the real data (not Inception FID).")
    for key, value in metrics.items():
        typer.echo(f"{key:28s} {value:.4g}")
