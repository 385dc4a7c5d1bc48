"""The shared training loop: loss falls, and an interrupted run resumes to identical weights."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import TensorDataset

from lcid.errors import InputError
from lcid.train import TrainConfig, fit
from lcid.train.loop import checkpoint_dirs


def _data() -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1
    return TensorDataset(x, y)


def _model() -> torch.nn.Module:
    torch.manual_seed(123)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))


class _Interrupt(Exception):
    pass


def _loss_fn(stop_at: int | None = None):
    calls = {"n": 0}

    def loss_fn(model, batch):
        calls["n"] += 1
        if stop_at is not None and calls["n"] == stop_at:
            raise _Interrupt
        x, y = batch
        # Global-RNG noise, like diffusion training draws: must be restored on resume.
        noisy = x + 0.01 * torch.randn_like(x)
        loss = torch.nn.functional.mse_loss(model(noisy), y)
        return loss, {"abs_err": float((model(x) - y).detach().abs().mean())}

    return loss_fn


def _config(out, **kw) -> TrainConfig:
    base = dict(out_dir=str(out), steps=10, batch_size=8, lr=1e-2, checkpoint_every=5, log_every=2, seed=7)
    base.update(kw)
    return TrainConfig(**base)


def test_resume_gives_same_weights_as_uninterrupted(tmp_path):
    straight = _model()
    fit(straight, _loss_fn(), _data(), _config(tmp_path / "a"))

    interrupted = _model()
    with pytest.raises(_Interrupt):
        fit(interrupted, _loss_fn(stop_at=7), _data(), _config(tmp_path / "b"))
    assert [n for n, _ in checkpoint_dirs(tmp_path / "b")] == [5]
    resumed = _model()
    metrics = fit(resumed, _loss_fn(), _data(), _config(tmp_path / "b"))
    assert metrics["resumed_from"] == 5
    for p, q in zip(straight.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_grad_accum_resume_crosses_epochs(tmp_path):
    # 40 samples / batch 8 = 5 batches per epoch; 2 per step -> step 5 ends mid-epoch 2.
    kw = dict(grad_accum=2, steps=8, checkpoint_every=5)
    straight = _model()
    fit(straight, _loss_fn(), _data(), _config(tmp_path / "a", **kw))
    first = _model()
    fit(first, _loss_fn(), _data(), _config(tmp_path / "b", **{**kw, "steps": 5}))
    resumed = _model()
    fit(resumed, _loss_fn(), _data(), _config(tmp_path / "b", **kw))
    for p, q in zip(straight.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_loss_falls_and_outputs_written(tmp_path):
    model = _model()
    metrics = fit(model, _loss_fn(), _data(), _config(tmp_path, steps=60, checkpoint_every=20, log_every=10))
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [10, 20, 30, 40, 50, 60]
    assert lines[-1]["loss"] < 0.5 * lines[0]["loss"]
    assert "abs_err" in lines[0] and lines[0]["seed"] == 7
    assert metrics["loss"] == pytest.approx(lines[-1]["loss"])
    assert json.loads((tmp_path / "config.json").read_text())["seed"] == 7
    assert [n for n, _ in checkpoint_dirs(tmp_path)] == [40, 60]  # last two kept
    # Already finished: a rerun trains nothing.
    assert fit(_model(), _loss_fn(), _data(), _config(tmp_path, steps=60))["resumed_from"] == 60


def test_config_rejects_bad_values(tmp_path):
    with pytest.raises(InputError):
        TrainConfig(out_dir=str(tmp_path), steps=0)
    with pytest.raises(InputError):
        TrainConfig.from_dict({"out_dir": "x", "steps": 1, "colour": 2})


def test_cosine_schedule_resumes_on_the_same_curve(tmp_path):
    from lcid.train.schedule import lr_factor, scheduled_adamw

    def run(out, stop_at=None):
        model = _model()
        config = _config(out, steps=10, checkpoint_every=5)
        optimizer, lr_schedule = scheduled_adamw(model, config, schedule="cosine", warmup_steps=3)
        fit(model, _loss_fn(stop_at), _data(), config, optimizer=optimizer, extra_state={"lr_schedule": lr_schedule})
        return model, optimizer

    straight, optimizer = run(tmp_path / "a")
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 * lr_factor(10, warmup=3, total=10, schedule="cosine"))
    with pytest.raises(_Interrupt):
        run(tmp_path / "b", stop_at=7)
    resumed, optimizer = run(tmp_path / "b")
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 * 0.05)
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_unknown_schedule_is_refused(tmp_path):
    from lcid.train.schedule import scheduled_adamw

    with pytest.raises(InputError, match="schedule must be cosine or constant"):
        scheduled_adamw(_model(), _config(tmp_path), schedule="step")


def test_resume_from_a_checkpoint_of_another_run_is_a_clear_error(tmp_path):
    fit(_model(), _loss_fn(), _data(), _config(tmp_path / "run", steps=5))  # checkpoint without a schedule
    from lcid.train.schedule import scheduled_adamw

    model = _model()
    config = _config(tmp_path / "run", steps=10)
    optimizer, schedule = scheduled_adamw(model, config)
    with pytest.raises(InputError, match=r"cannot resume from .*step-5.*use a new output folder"):
        fit(model, _loss_fn(), _data(), config, optimizer=optimizer, extra_state={"lr_schedule": schedule})
