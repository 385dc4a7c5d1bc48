"""``lcid ask``, ``lcid train vqa``, ``lcid eval vqa``, ``lcid model push|calibrate|ensemble|prior|statistics``."""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import typer

from lcid.errors import InputError


def register(app: typer.Typer) -> None:
    from lcid.cli import command_group

    app.command("ask")(ask_command)
    command_group(app, "train", "Train models.").command("vqa")(train_vqa_command)
    command_group(app, "eval", "Evaluate models.").command("vqa")(eval_vqa_command)
    models = command_group(app, "model", "Manage saved models.")
    models.command("push")(push_command)
    models.command("calibrate")(calibrate_command)
    models.command("ensemble")(ensemble_command)
    models.command("prior")(prior_command)
    models.command("statistics")(statistics_command)


def acquisition_text(bval: Path, bvec: Path) -> str:
    """Plain-text summary of a gradient table, as the DWI model reads it."""
    from lcid.io.gradient_files import read_bvals, read_bvecs
    from lcid.vlm.dwi.text import acquisition_facts
    from lcid.vlm.dwi.text import acquisition_text as describe

    return describe(acquisition_facts(read_bvals(bval), read_bvecs(bvec)))


def _read_findings(path: Path) -> dict:
    """A findings.json written by ``lcid check``."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read findings {path} ({exc.__class__.__name__})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("findings"), list):
        raise InputError(f"{path} is not a findings.json of lcid check (no findings list)")
    return data


def ask_command(
    image: Path = typer.Argument(..., help="PNG/JPEG image or NIfTI (2D, 3D or 4D)."),
    question: str | None = typer.Option(None, "--question", "-q", help="The question (default: what is wrong?)."),
    acq: str | None = typer.Option(None, help="Acquisition described in words."),
    bval: Path | None = typer.Option(None, help="FSL .bval file (with --bvec) to describe the acquisition."),
    bvec: Path | None = typer.Option(None, help="FSL .bvec file."),
    model: str = typer.Option("dwi", help="Shipped model name (dwi, vqa-rad) or a model folder."),
    slice_index: int | None = typer.Option(None, "--slice", help="Axial slice of a 3D/4D NIfTI (default middle)."),
    volume: int = typer.Option(0, help="Volume of a 4D NIfTI."),
    json_out: bool = typer.Option(False, "--json", help="Print the answer as JSON."),
    findings: Path | None = typer.Option(None, help="findings.json of lcid check on the whole series, to ground the answer."),
) -> None:
    """Ask the vision-language model a question about an image."""
    from lcid.cli import fail
    from lcid.vlm.image import load_image
    from lcid.vlm.inference import ask
    from lcid.vlm.prompt import DEFAULT_QUESTION

    try:
        if (bval is None) != (bvec is None):
            raise InputError("--bval and --bvec go together")
        if bval is not None and bvec is not None:
            acq = acquisition_text(bval, bvec)
        checked = _read_findings(findings) if findings is not None else None
        array = load_image(image, slice_index=slice_index, volume=volume)
        interactive = question is None and sys.stdin.isatty() and not json_out
        history: list[tuple[str, str]] = []
        current = question or DEFAULT_QUESTION
        while True:
            result = ask(array, question=current, acq=acq, findings=checked, model=model, history=history)
            if json_out:
                typer.echo(json.dumps(result, indent=2))
            else:
                typer.echo(result["answer"])
                if "detected" in result:  # a DWI model: its head's decisions at the model's thresholds
                    probs = {p["problem"]: p["probability"] for p in result["problems"]}
                    named = ", ".join(f"{p} ({probs[p]:.2f})" for p in result["detected"]) or "none"
                    typer.echo(f"[problems over the model's thresholds: {named}]")
            if not interactive:
                return
            history.append((current, result["answer"]))
            current = typer.prompt("follow-up (empty to quit)", default="", show_default=False).strip()
            if not current:
                return
    except InputError as exc:
        fail(str(exc))


def train_vqa_command(
    data_dir: Path = typer.Argument(..., help="Data set folder (VQA-RAD: trainset.json + images/)."),
    data: str = typer.Option("vqa-rad", "--data", help="Data format: vqa-rad, slake or vqa-med."),
    config: Path = typer.Option(Path("configs/vlm/vqa_rad.yaml"), help="Training recipe (YAML)."),
    out: Path = typer.Option(Path("runs/vqa"), help="Run folder: checkpoints, log, and model/."),
    threads: int = typer.Option(2, help="CPU threads for torch."),
    init_from: str | None = typer.Option(
        None, "--init-from", help="Start from this model's weights (shipped name such as dwi, or a model folder); "
        "overrides the recipe's init_from."),
) -> None:
    """Train the vision-language model on the train split of a VQA data set."""
    from lcid.cli import fail, use_threads
    from lcid.vlm.training import VQATrainSettings, train_vqa

    use_threads(threads)
    try:
        settings = VQATrainSettings.from_yaml(config)
        if init_from is not None:
            settings = replace(settings, init_from=init_from)
        command = " ".join(shlex.quote(str(a)) for a in
                           ("lcid", "train", "vqa", "--data", data, data_dir, "--config", config, "--out", out,
                            *(("--init-from", init_from) if init_from is not None else ())))
        record = train_vqa(data_dir, settings=settings, out_dir=out, data_format=data, command=command)  # type: ignore[arg-type]
    except InputError as exc:
        fail(str(exc))
    typer.echo(f"model saved to {out / 'model'} ({record['seconds']:.0f} s)")


def eval_vqa_command(
    model: str = typer.Option(..., help="Shipped model name or model folder."),
    data_dir: Path = typer.Option(..., "--data", help="Data set folder with the test split."),
    data_format: str = typer.Option("vqa-rad", "--format", help="vqa-rad, slake or vqa-med."),
    json_out: bool = typer.Option(False, "--json", help="Print all scores as one JSON object."),
    no_embeddings: bool = typer.Option(False, "--no-embeddings", help="Skip the sentence-embedding similarity."),
    record: bool = typer.Option(False, "--record", help="Save evaluation.json in the model folder, refresh its card."),
) -> None:
    """Score a model on the test split: accuracy (closed/open/overall), BLEU, embedding similarity."""
    from lcid.cli import fail
    from lcid.io.atomic import atomic_write_text
    from lcid.io.vqa import read_vqa_split
    from lcid.vlm.ensemble import VLMEnsemble
    from lcid.vlm.evaluate import evaluate
    from lcid.vlm.inference import load_model, resolve_model
    from lcid.vlm.model_card import EVALUATION_FILE, write_ensemble_card, write_model_card

    try:
        vlm = load_model(model)
        test = read_vqa_split(data_dir, split="test", data_format=data_format)  # type: ignore[arg-type]
        train = read_vqa_split(data_dir, split="train", data_format=data_format)  # type: ignore[arg-type]
        result = evaluate(vlm, test, train_samples=train, embeddings=not no_embeddings)
        if record:
            folder = resolve_model(model)
            atomic_write_text(folder / EVALUATION_FILE, json.dumps(result, indent=2) + "\n")
            if isinstance(vlm, VLMEnsemble):
                write_ensemble_card(folder)
            else:
                write_model_card(folder, vlm.cfg)
    except InputError as exc:
        fail(str(exc))
    if json_out:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"{'':22}{'closed':>8}{'open':>8}{'overall':>9}")
    for name, prefix in (("model", ""), ("majority baseline", "majority_baseline_")):
        row = [result.get(f"{prefix}{k}", float('nan')) for k in ("closed", "open", "overall")] if prefix else \
            [result[f"{k}_accuracy"] for k in ("closed", "open", "overall")]
        typer.echo(f"{name:22}" + "".join(f"{100 * v:8.1f}" for v in row[:2]) + f"{100 * row[2]:9.1f}")
    typer.echo(" ".join(f"BLEU-{n} {result[f'bleu{n}']:.3f}" for n in range(1, 5)))
    if "embedding_cosine" in result:
        typer.echo(f"embedding cosine {result['embedding_cosine']:.3f} ({result['embedding_model']})")


def push_command(
    folder: Path = typer.Argument(..., help="Saved model folder (config.json, model.safetensors …)."),
    repo: str | None = typer.Argument(None, help="Hugging Face repo id (user/name) to upload to."),
    to_folder: Path | None = typer.Option(None, "--to-folder", help="Copy into a local folder instead of uploading."),
    private: bool = typer.Option(True, help="Create the hub repo as private."),
) -> None:
    """Publish a model: upload to the Hugging Face hub (only when asked), or copy to a folder."""
    from lcid.cli import fail
    from lcid.vlm.inference import resolve_model
    from lcid.vlm.publish import push_to_folder, push_to_hub

    try:
        source = resolve_model(str(folder))
        if to_folder is not None:
            typer.echo(f"copied to {push_to_folder(source, to_folder)}")
        elif repo:
            typer.echo(f"uploaded to {push_to_hub(source, repo, private=private)}")
        else:
            raise InputError("give a REPO id to upload to, or --to-folder DIR")
    except InputError as exc:
        fail(str(exc))


def ensemble_command(
    members: list[Path] = typer.Argument(..., help="Two or more saved model folders with the same head (VQA or DWI)."),
    out: Path = typer.Option(..., "--out", help="Ensemble folder to write."),
) -> None:
    """Combine trained models into one ensemble folder: answers from their mean head probability
    (a DWI ensemble then needs its own thresholds: lcid model calibrate)."""
    from lcid.cli import fail
    from lcid.vlm.dwi.card import write_dwi_card
    from lcid.vlm.ensemble import build_ensemble, read_record
    from lcid.vlm.model_card import write_ensemble_card

    try:
        command = " ".join(shlex.quote(str(a)) for a in ("lcid", "model", "ensemble", *members, "--out", out))
        folder = build_ensemble(members, out, command=command)
        first = json.loads((folder / read_record(folder)["members"][0] / "config.json").read_text())
        (write_dwi_card if first.get("head") == "multilabel" else write_ensemble_card)(folder)
    except InputError as exc:
        fail(str(exc))
    typer.echo(f"ensemble of {len(members)} models saved to {folder}")


def calibrate_command(
    model: str = typer.Argument(..., help="DWI model or ensemble folder (or shipped name) to write thresholds.json into."),
    data_dir: Path = typer.Option(..., "--data", help="Data set from lcid data build-vlm."),
    split: str | None = typer.Option(
        None, help="Use this whole split (of a set built with another seed); default: the training scans "
                   "the model kept out of fitting (training.json)."),
    threads: int = typer.Option(1, help="CPU threads for torch."),
) -> None:
    """Choose per-problem decision thresholds on validation questions and save them with the model."""
    from lcid.cli import fail, use_threads
    from lcid.vlm.dwi.calibrate import calibrate, fitted_record, validation_rows
    from lcid.vlm.inference import load_model, resolve_model
    from lcid.vlm.model import write_thresholds

    use_threads(threads)
    try:
        folder = resolve_model(model)
        vlm = load_model(folder)
        if vlm.cfg.head != "multilabel":
            raise InputError(f"model {model} has no multi-label problem head (is it a DWI model?)")
        rows, source = validation_rows(data_dir, fitted_record(folder), split=split)
        record = calibrate(vlm, rows, source=source)
        path = write_thresholds(folder, vlm.thresholds, record)
    except InputError as exc:
        fail(str(exc))
    typer.echo(f"{'problem':16}{'threshold':>10}{'F1':>6}{'F1@0.5':>8}{'n':>6}")
    for label, c in record["problems"].items():
        typer.echo(f"{label:16}{c['threshold']:10.2f}{c['f1']:6.2f}{c['f1_default']:8.2f}{c['positives']:6d}"
                   + ("" if c["chosen"] else "  (too few: 0.5)"))
    typer.echo(f"thresholds saved to {path} ({source})")


def prior_command(
    model: str = typer.Argument(..., help="VQA ensemble folder (or shipped name) to write the prompt prior into."),
    data_dir: Path | None = typer.Option(None, "--data", help="The data set the members were trained on "
                                         "(default: the folder recorded in their training.json)."),
    weight: float | None = typer.Option(None, help="Weight of the prior in [0, 1); default: chosen by log-likelihood "
                                        "on the questions the members held out."),
    C: float = typer.Option(3.0, "--C", help="Inverse regularisation of the logistic regression."),
    threads: int = typer.Option(1, help="CPU threads for torch."),
) -> None:
    """Fit a text-only answer model on the ensemble's training questions and multiply it into its answers."""
    from lcid.cli import fail, use_threads
    from lcid.vlm.inference import resolve_model
    from lcid.vlm.model_card import write_ensemble_card
    from lcid.vlm.prompt_prior import fit_ensemble_prior

    use_threads(threads)
    argv = ["lcid", "model", "prior", model, *(["--data", data_dir] if data_dir else []),
            *(["--weight", weight] if weight is not None else []), "--C", C]
    try:
        folder = resolve_model(model)
        prior = fit_ensemble_prior(folder, data_dir=data_dir, weight=weight, C=C,
                                   command=" ".join(shlex.quote(str(a)) for a in argv))
        write_ensemble_card(folder)
    except InputError as exc:
        fail(str(exc))
    chosen = prior.record.get("weight_chosen_on")
    if chosen:
        typer.echo(f"{'weight':>8}{'held-out NLL':>14}")
        for w, nll in chosen["mean_nll_by_weight"].items():
            typer.echo(f"{w:8.1f}{nll:14.3f}" + ("  <- chosen" if w == prior.weight else ""))
    typer.echo(f"prompt prior (weight {prior.weight:.2f}, {prior.record['questions']} training questions) saved to {folder}")


def statistics_command(
    model: str = typer.Argument(..., help="DWI ensemble folder (or shipped name) to add the slice-statistics classifier to."),
    data_dir: Path | None = typer.Option(None, "--data", help="The data set the members were trained on "
                                         "(default: the folder recorded in their training.json)."),
    threads: int = typer.Option(1, help="CPU threads for torch."),
) -> None:
    """Fit a picture-only classifier over slice statistics on the members' training pictures, combine
    it with the ensemble's problem probabilities (noisy-OR) and choose the thresholds again."""
    from lcid.cli import fail, use_threads
    from lcid.vlm.dwi.card import write_dwi_card
    from lcid.vlm.dwi.statistics_model import fit_ensemble_statistics
    from lcid.vlm.inference import resolve_model

    use_threads(threads)
    argv = ["lcid", "model", "statistics", model, *(["--data", data_dir] if data_dir else [])]
    try:
        folder = resolve_model(model)
        statistics, record = fit_ensemble_statistics(folder, data_dir=data_dir,
                                                     command=" ".join(shlex.quote(str(a)) for a in argv))
        write_dwi_card(folder)
    except InputError as exc:
        fail(str(exc))
    typer.echo(f"{'problem':16}{'threshold':>10}{'F1':>6}{'n':>6}")
    for label, c in record["problems"].items():
        typer.echo(f"{label:16}{c['threshold']:10.2f}{c['f1']:6.2f}{c['positives']:6d}")
    typer.echo(f"slice-statistics classifier ({statistics.record['data']['pictures']} training pictures) and "
               f"thresholds saved to {folder}")
