"""One training loop for every model in lcid (vision-language model, autoencoders, diffusion).

Built on Hugging Face accelerate, so the same call runs on a CPU, one GPU, or several GPUs
under ``accelerate launch``/``torchrun`` without changes. The loop owns what every run needs
and nothing model-specific: seeding, data order, gradient accumulation and clipping,
checkpoints with resume, progress bar and a ``metrics.jsonl`` log.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from lcid.errors import InputError
from lcid.io.atomic import atomic_write_text
from lcid.train.config import TrainConfig
from lcid.train.sampler import EpochPermutationSampler

LossOutput = torch.Tensor | tuple[torch.Tensor, dict[str, float]]
LossFn = Callable[[torch.nn.Module, Any], LossOutput]

CHECKPOINTS = "checkpoints"
KEEP_CHECKPOINTS = 2


def checkpoint_dirs(out_dir: str | Path) -> list[tuple[int, Path]]:
    """Checkpoints ``out_dir/checkpoints/step-N`` as ``(N, path)``, oldest first."""
    root = Path(out_dir) / CHECKPOINTS
    found = []
    if root.is_dir():
        for path in root.glob("step-*"):
            suffix = path.name.removeprefix("step-")
            if path.is_dir() and suffix.isdigit():
                found.append((int(suffix), path))
    return sorted(found)


def fit(
    model: torch.nn.Module,
    loss_fn: LossFn,
    data: Dataset,
    config: TrainConfig,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    extra_state: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Train ``model`` for ``config.steps`` optimizer steps, resuming from the newest checkpoint.

    Parameters
    ----------
    model
        Trained in place (accelerate may move it to the accelerator device).
    loss_fn
        ``loss_fn(model, batch)`` returns a scalar loss, or ``(loss, {name: float})`` with extra
        numbers to log. ``batch`` is what the data loader yields, already on the device. Any
        randomness it uses (noise, time steps, dropout) should come from torch's global
        generator, whose state is saved in checkpoints, so a resumed run is exact.
    data
        Map-style dataset; batches follow a permutation seeded by ``(config.seed, epoch)``.
    config
        Steps, batch size, learning rate, seed, checkpoint/log intervals, precision.
    optimizer
        Defaults to AdamW over the trainable parameters with ``config.lr`` and
        ``config.weight_decay``.
    collate_fn
        Passed to the ``DataLoader``.
    extra_state
        Named objects with ``state_dict``/``load_state_dict`` (an EMA copy, a learning-rate
        scheduler) saved and restored with the checkpoints.

    Returns
    -------
    dict
        Final metrics: ``step``, ``loss`` (mean over the last log window), ``seconds``,
        ``steps_per_s``, ``resumed_from`` and the means of the extra numbers ``loss_fn`` logged.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    out_dir = Path(config.out_dir)
    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    set_seed(config.seed)
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / "config.json", config.to_json() + "\n")

    if optimizer is None:
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    sampler = EpochPermutationSampler(len(data), seed=config.seed)  # type: ignore[arg-type]
    # A private generator for worker seeds: creating an iterator must not draw from the
    # global generator, or a resumed run would see different noise than an uninterrupted one.
    loader_generator = torch.Generator()
    loader = DataLoader(
        data,
        batch_size=config.batch_size,
        sampler=sampler,
        collate_fn=collate_fn,
        num_workers=config.num_workers,
        generator=loader_generator,
    )
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    for obj in (extra_state or {}).values():
        accelerator.register_for_checkpointing(obj)

    start = 0
    existing = checkpoint_dirs(out_dir)
    if existing:
        start, path = existing[-1]
        try:
            accelerator.load_state(str(path))
        except (RuntimeError, KeyError, ValueError) as exc:  # saved by another model, optimizer or schedule
            raise InputError(f"cannot resume from {path}: it does not match this run's model, optimizer and "
                             f"schedule ({exc.__class__.__name__}); use a new output folder") from exc
    if start >= config.steps:
        return {"step": float(start), "resumed_from": float(start)}

    batches = _batches(loader, loader_generator, config=config, accelerator=accelerator, start_step=start)
    window: dict[str, list[float]] = {}
    summary: dict[str, float] = {}
    began = time.perf_counter()
    window_began = began
    bar = tqdm(total=config.steps, initial=start, desc="train", disable=not accelerator.is_local_main_process)
    model.train()
    for step in range(start + 1, config.steps + 1):
        step_logs: dict[str, float] = {}
        for micro in range(config.grad_accum):
            batch = next(batches)
            last = micro == config.grad_accum - 1
            with accelerator.no_sync(model) if not last else contextlib.nullcontext():
                with accelerator.autocast():
                    loss, logs = _split(loss_fn(model, batch))
                accelerator.backward(loss / config.grad_accum)
            step_logs["loss"] = step_logs.get("loss", 0.0) + _mean_across(accelerator, loss) / config.grad_accum
            for key, value in logs.items():
                step_logs[key] = step_logs.get(key, 0.0) + float(value) / config.grad_accum
        if config.grad_clip is not None:
            norm = accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
            step_logs["grad_norm"] = float(norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        for key, value in step_logs.items():
            window.setdefault(key, []).append(value)
        bar.update(1)
        bar.set_postfix(loss=f"{step_logs['loss']:.4g}")

        if step % config.log_every == 0 or step == config.steps:
            now = time.perf_counter()
            summary = {key: sum(values) / len(values) for key, values in window.items()}
            record = {
                "step": step,
                **summary,
                "lr": float(optimizer.param_groups[0]["lr"]),
                "steps_per_s": len(window["loss"]) / max(now - window_began, 1e-9),
                "seed": config.seed,
            }
            if accelerator.is_main_process:
                with open(out_dir / "metrics.jsonl", "a") as handle:
                    handle.write(json.dumps(record) + "\n")
            window, window_began = {}, now
        if step % config.checkpoint_every == 0 or step == config.steps:
            _save_checkpoint(accelerator, out_dir, step)
    bar.close()
    accelerator.wait_for_everyone()
    seconds = time.perf_counter() - began
    return {
        "step": float(config.steps),
        **summary,
        "seconds": seconds,
        "steps_per_s": (config.steps - start) / max(seconds, 1e-9),
        "resumed_from": float(start),
    }


def _batches(
    loader: DataLoader,
    generator: torch.Generator,
    *,
    config: TrainConfig,
    accelerator: Any,
    start_step: int,
) -> Iterator[Any]:
    """Endless batches in the order an uninterrupted run would see from step ``start_step``."""
    per_epoch = len(loader)
    if per_epoch == 0:
        from lcid.errors import InputError

        raise InputError("the training data set is empty")
    consumed = start_step * config.grad_accum
    epoch, skip = divmod(consumed, per_epoch)
    while True:
        loader.set_epoch(epoch)
        generator.manual_seed(config.seed * 1_000_003 + epoch)
        source = accelerator.skip_first_batches(loader, skip) if skip else loader
        yield from source
        epoch, skip = epoch + 1, 0


def _split(output: LossOutput) -> tuple[torch.Tensor, dict[str, float]]:
    if isinstance(output, tuple):
        loss, logs = output
        return loss, dict(logs)
    return output, {}


def _mean_across(accelerator: Any, loss: torch.Tensor) -> float:
    """The loss averaged over processes (a plain ``float`` on one process)."""
    return float(accelerator.gather(loss.detach().float().reshape(1)).mean())


def _save_checkpoint(accelerator: Any, out_dir: Path, step: int) -> None:
    """``accelerator.save_state`` to ``checkpoints/step-N``; keep the newest two."""
    target = out_dir / CHECKPOINTS / f"step-{step}"
    accelerator.save_state(str(target))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        for _, old in checkpoint_dirs(out_dir)[:-KEEP_CHECKPOINTS]:
            shutil.rmtree(old, ignore_errors=True)
