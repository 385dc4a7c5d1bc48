"""Training steps/s and sampling time per image: lcid's loop vs a plain MONAI tutorial loop.

Same tiny 2D latent-diffusion UNet, same latents, same batch, same process. Prints a table.
Runs on the GPU when torch sees one (accelerate picks it for ``lcid.train.fit``; the plain loop
and the sampler follow), else on the CPU.
Run: ``.venv/bin/python bench/synth_speed.py [--steps 20] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from torch.utils.data import TensorDataset

from lcid.synth.model import SynthModel
from lcid.synth.networks import build_scheduler
from lcid.synth.training import ldm_loss_fn
from lcid.train import TrainConfig, fit

UNET = {"channels": [32, 64], "attention_levels": [False, True], "norm_num_groups": 16, "num_head_channels": 32,
        "conditioning": "class", "classes": ["a", "b"]}
AE = {"channels": [16, 32, 32], "latent_channels": 3, "norm_num_groups": 16}


def plain_monai_loop(unet: torch.nn.Module, scheduler, mu: torch.Tensor, labels: torch.Tensor, *, steps: int, batch: int) -> float:
    """The MONAI generative tutorial's loop: DiffusionInferer, AdamW, MSE; returns steps/s."""
    from monai.inferers import DiffusionInferer

    from lcid.synth.conditioning import class_context

    inferer = DiffusionInferer(scheduler)
    device = next(unet.parameters()).device
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-3)
    spec = type("S", (), {"classes": ("a", "b")})()
    start = time.perf_counter()
    for step in range(steps):
        index = torch.randint(0, len(mu), (batch,))
        z = mu[index].to(device)
        noise = torch.randn_like(z)
        t = torch.randint(0, 1000, (batch,), device=device).long()
        pred = inferer(inputs=z, diffusion_model=unet, noise=noise, timesteps=t, condition=class_context(spec, labels[index]).to(device), mode="crossattn")
        loss = torch.nn.functional.mse_loss(pred, noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sample-n", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="Alternating runs of each training loop.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = SynthModel(image_shape=[32, 32], autoencoder=AE, diffusion=UNET).to(device)
    mu = torch.randn(512, *model.latent_shape)
    labels = torch.randint(0, 2, (512,))
    scheduler = build_scheduler(model.diffusion_spec, sampler="ddpm")
    # Alternate the two loops so that a change of load on a shared machine hits both alike.
    plain, ours = [], []
    for _ in range(args.repeats):
        plain.append(plain_monai_loop(model.unet, scheduler, mu, labels, steps=args.steps, batch=args.batch))
        with tempfile.TemporaryDirectory() as tmp:
            config = TrainConfig(out_dir=tmp, steps=args.steps, batch_size=args.batch, checkpoint_every=10**6, log_every=10**6)
            metrics = fit(model.unet, ldm_loss_fn(model.diffusion_spec, scheduler, 1.0), TensorDataset(mu, torch.zeros_like(mu), labels), config)
        ours.append(metrics["steps_per_s"])
    rows = [("plain MONAI loop", plain), ("lcid.train.fit (accelerate, checkpoint at end)", ours)]
    model.to(device)
    model.scale_factor.fill_(1.0)
    timings = []
    for sampler, steps in (("ddim", 50), ("ddim", 20)):
        start = time.perf_counter()
        model.sample(args.sample_n, condition=torch.arange(args.sample_n) % 2, sampler=sampler, steps=steps)
        timings.append((f"{sampler} {steps} steps, guidance 3", (time.perf_counter() - start) / args.sample_n))
    print(f"device: {device}, CPU threads: {args.threads}, batch {args.batch}, {args.steps} steps, 32x32 images -> 8x8x3 latents")
    print(f"{'training loop':50s} {'steps/s (median)':>17s}  runs")
    for name, values in rows:
        print(f"{name:50s} {sorted(values)[len(values) // 2]:17.3f}  {', '.join(f'{v:.2f}' for v in values)}")
    print(f"{'sampling':50s} {'s/image':>10s}")
    for name, value in timings:
        print(f"{name:50s} {value:10.4f}")


if __name__ == "__main__":
    main()
