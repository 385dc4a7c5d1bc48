"""``lcid data build-vlm``, ``lcid data stats``, ``lcid train vlm`` and ``lcid eval vlm`` (the DWI model)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import typer

from lcid.errors import InputError

#: Default cache of simulated scans.
CACHE_DIR = Path.home() / ".cache" / "lcid" / "vlm-dwi"


def register(app: typer.Typer) -> None:
    from lcid.cli import command_group

    data = command_group(app, "data", "Make and inspect data sets.")
    data.command("build-vlm")(build_vlm_command)
    data.command("stats")(stats_command)
    command_group(app, "train", "Train models.").command("vlm")(train_vlm_command)
    command_group(app, "eval", "Evaluate models.").command("vlm")(eval_vlm_command)


def build_vlm_command(
    out: Path = typer.Option(..., help="Output folder (images/, manifest.jsonl, build.json)."),
    n: int = typer.Option(1500, help="Number of pictures (two questions each)."),
    seed: int = typer.Option(0, help="Seed of every random choice."),
    data_dir: Path | None = typer.Option(None, help="Folder of the shared real DWI series."),
    sources: str | None = typer.Option(None, help="Comma-separated sources (real series names, phantom_<seed>)."),
    cache: Path = typer.Option(CACHE_DIR, help="Cache of simulated scans."),
    no_cache: bool = typer.Option(False, help="Do not read or write the cache."),
) -> None:
    """Simulate problems in real series and phantoms, render slices, write questions and answers."""
    from dataclasses import replace

    from lcid.cli import fail
    from lcid.vlm.dwi.build import MANIFEST, BuildSettings, build

    try:
        if n < 1:
            raise InputError("--n must be at least 1")
        settings = BuildSettings(n=n, seed=seed)
        if data_dir is not None:
            settings = replace(settings, data_dir=str(data_dir))
        if sources:
            settings = replace(settings, sources=tuple(s.strip() for s in sources.split(",") if s.strip()))
        build(out, settings=settings, cache=None if no_cache else cache)
    except InputError as exc:
        fail(str(exc))
    typer.echo(f"wrote {out / MANIFEST}")


def stats_command(
    data_dir: Path = typer.Argument(..., help="Data set folder from lcid data build-vlm."),
    examples: int = typer.Option(6, help="Question/answer pairs to print."),
    plot: Path | None = typer.Option(None, help="PNG of the counts (default DATA_DIR/stats.png)."),
) -> None:
    """Count samples per problem, severity, plane and scanner; plot them; print examples."""
    from lcid.cli import fail
    from lcid.vlm.dwi.build import read_manifest
    from lcid.vlm.dwi.stats import manifest_counts, plot_counts

    try:
        rows = read_manifest(data_dir)
        if not rows:
            raise InputError(f"{data_dir} has an empty manifest")
        counts = manifest_counts(rows)
        path = plot_counts(counts, plot or data_dir / "stats.png")
    except InputError as exc:
        fail(str(exc))
    typer.echo(f"{len(rows)} questions on {len({r['image'] for r in rows})} pictures")
    for key, table in counts.items():
        typer.echo(f"{key:>9}: " + ", ".join(f"{k} {v}" for k, v in table.items()))
    step = max(1, len(rows) // max(1, examples))
    for r in rows[::step][:examples]:
        typer.echo(f"\n[{r['source']} {r['plane']} slice {r['slice']} volume {r['volume']} b={r['bval']}] "
                   f"labels: {', '.join(r['labels']) or 'none'}")
        typer.echo(f"  acq: {r['acq'] or '-'}\n  Q: {r['question']}\n  A: {r['answer']}")
    typer.echo(f"\nplot: {path}")


def train_vlm_command(
    config: Path = typer.Option(Path("configs/vlm/dwi.yaml"), help="Training recipe (YAML)."),
    data_dir: Path = typer.Option(Path("runs/dwi-vlm-data"), "--data", help="Data set from lcid data build-vlm."),
    out: Path = typer.Option(Path("runs/dwi"), help="Run folder: checkpoints, log, and model/."),
    threads: int = typer.Option(2, help="CPU threads for torch."),
    holdout_source: list[str] = typer.Option(
        [], "--holdout-source",
        help="Also keep out this training source (repeatable): a leave-one-scanner-out run (the recipe's holdout_sources)."),
) -> None:
    """Train the DWI vision-language model on the train split (held-out scanners left out)."""
    import dataclasses

    from lcid.cli import fail, use_threads
    from lcid.vlm.dwi.training import train_dwi
    from lcid.vlm.training import VQATrainSettings

    use_threads(threads)
    try:
        settings = VQATrainSettings.from_yaml(config)
        if holdout_source:
            settings = dataclasses.replace(settings, holdout_sources=[*settings.holdout_sources, *holdout_source])
        command = "lcid " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        record = train_dwi(data_dir, settings=settings, out_dir=out, command=command)
    except InputError as exc:
        fail(str(exc))
    typer.echo(f"model saved to {out / 'model'} ({record['seconds']:.0f} s)")


def eval_vlm_command(
    model: str = typer.Option("dwi", help="Shipped model name or model folder."),
    data_dir: Path = typer.Option(..., "--data", help="Data set from lcid data build-vlm."),
    split: str = typer.Option("test", help="Split to score (test = held-out scanners)."),
    limit: int | None = typer.Option(None, help="Score only the first N questions."),
    json_out: bool = typer.Option(False, "--json", help="Print all scores as one JSON object."),
    no_embeddings: bool = typer.Option(False, "--no-embeddings", help="Skip the sentence-embedding similarity."),
    threads: int = typer.Option(2, help="CPU threads (latency is reported for this many)."),
    record: bool = typer.Option(False, "--record", help="Save evaluation.json in the model folder."),
) -> None:
    """Per-problem precision/recall/F1 (head at 0.5 and at the model's thresholds, text), BLEU, embedding cosine, acquisition-text effect, latency."""
    from lcid.cli import fail, use_threads
    from lcid.io.atomic import atomic_write_text
    from lcid.vlm.dwi.build import read_manifest
    from lcid.vlm.dwi.card import write_dwi_card
    from lcid.vlm.dwi.evaluate import evaluate_dwi
    from lcid.vlm.inference import load_model, resolve_model

    try:
        use_threads(threads)
        vlm = load_model(model)
        if vlm.cfg.head != "multilabel":
            raise InputError(f"model {model} has no multi-label problem head (is it a DWI model?)")
        rows = read_manifest(data_dir, split=split)[:limit]
        if not rows:
            raise InputError(f"{data_dir} has no {split} rows")
        result = evaluate_dwi(vlm, rows, embeddings=not no_embeddings)
        result["data"] = {"dir": str(data_dir), "split": split}
        if record:
            atomic_write_text(resolve_model(model) / "evaluation.json", json.dumps(result, indent=2) + "\n")
            write_dwi_card(resolve_model(model))
    except InputError as exc:
        fail(str(exc))
    if json_out:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"{result['n']} questions, split {split}")
    typer.echo(f"{'problem':16}{'head P':>8}{'R':>6}{'F1':>6}{'text P':>8}{'R':>6}{'F1':>6}{'n':>6}")
    for group in ("image_visible", "text_visible"):
        head, text = result["head"][group], result["text"][group]
        for p, h in head.items():
            if p == "macro_f1":
                continue
            t = text[p]
            typer.echo(f"{p:16}{h['precision']:8.2f}{h['recall']:6.2f}{h['f1']:6.2f}"
                       f"{t['precision']:8.2f}{t['recall']:6.2f}{t['f1']:6.2f}{h['support']:6d}")
        typer.echo(f"{'macro F1 ' + group:30}{head['macro_f1']:6.2f}{'':14}{text['macro_f1']:6.2f}")
    typer.echo("head at the model's thresholds (chosen on validation data; 0.5 where none saved):")
    typer.echo(f"{'problem':16}{'thresh':>8}{'P':>6}{'R':>6}{'F1':>6}")
    for group in ("image_visible", "text_visible"):
        calibrated = result["head_calibrated"][group]
        for p, h in calibrated.items():
            if p != "macro_f1":
                typer.echo(f"{p:16}{result['thresholds'][p]:8.2f}{h['precision']:6.2f}{h['recall']:6.2f}{h['f1']:6.2f}")
        typer.echo(f"{'macro F1 ' + group:36}{calibrated['macro_f1']:6.2f}")
    typer.echo(" ".join(f"BLEU-{k} {result[f'bleu{k}']:.3f}" for k in range(1, 5)))
    if "embedding_cosine" in result:
        typer.echo(f"embedding cosine {result['embedding_cosine']:.3f}")
    effect = result["acquisition_effect"]
    if effect:
        typer.echo("acquisition text: " + "; ".join(
            f"{k}: visible F1 {effect[k]['image_visible_macro_f1']:.2f}, few_directions {effect[k]['few_directions_rate']:.2f}"
            for k in ("true_text", "no_text", "false_text")))
    lat = result["latency_s"]
    if lat:
        typer.echo(f"latency per answer: median {lat['median']:.3f} s, p90 {lat['p90']:.3f} s ({lat['threads']} threads)")
