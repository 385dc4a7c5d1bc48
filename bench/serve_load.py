"""Load test of ``lcid serve`` on 127.0.0.1: throughput, latency, errors and server memory.

Starts ``lcid serve`` on a free port (or uses ``--url``), then for a bounded time per
endpoint keeps ``--concurrency`` clients busy with:

- ``GET /api/health``;
- ``POST /api/check`` with a real series (default: the Siemens AP run of the shared data);
- ``POST /api/ask`` with a real slice (the middle b0 slice of that series, as PNG).

Prints one row per endpoint (requests, errors, throughput, p50/p95 latency) and the
server's resident memory before and after each phase; ``health*`` is one client asking
for health while the checks run (the server must keep answering). Rerunnable::

    .venv/bin/python bench/serve_load.py --seconds 20 --concurrency 8
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import io
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SERIES = ROOT.parent / "shared" / "data" / "dwi" / "siemens_prisma_xa30_ap_pa_20dir" / "DWI_dir80_AP.nii.gz"


@dataclass
class Phase:
    """Outcome of hammering one endpoint."""

    name: str
    concurrency: int
    seconds: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    rss_before_mb: float | None = None
    rss_after_mb: float | None = None

    @property
    def requests(self) -> int:
        return len(self.latencies_s) + sum(self.errors.values())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rss_mb(pid: int | None) -> float | None:
    """Resident memory of the server and its children, MiB (None when unknown)."""
    if pid is None:
        return None
    try:
        import psutil
    except ImportError:
        return None
    with contextlib.suppress(psutil.Error):
        proc = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20
    return None


@contextlib.contextmanager
def running_server(max_upload_mb: int):
    """``lcid serve`` in a subprocess; yields (base URL, pid)."""
    port = _free_port()
    lcid = Path(sys.executable).with_name("lcid")
    command = [str(lcid), "serve", "--port", str(port), "--max-upload-mb", str(max_upload_mb)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                    break
            if process.poll() is not None:
                raise RuntimeError(f"lcid serve exited: {process.stderr.read() if process.stderr else ''}")
            time.sleep(0.3)
        else:
            raise RuntimeError("lcid serve did not answer within 60 s")
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def hammer(phase: Phase, request, *, seconds: float, pid: int | None) -> Phase:
    """Run ``request(client)`` from ``phase.concurrency`` threads until ``seconds`` pass."""
    phase.rss_before_mb = _rss_mb(pid)
    deadline = time.monotonic() + seconds

    def worker() -> tuple[list[float], Counter]:
        latencies, errors = [], Counter()
        with httpx.Client(timeout=600) as client:
            while time.monotonic() < deadline:
                start = time.perf_counter()
                try:
                    response = request(client)
                except httpx.HTTPError as exc:
                    errors[exc.__class__.__name__] += 1
                    continue
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - start)
                else:
                    is_json = response.headers.get("content-type", "").startswith("application/json")
                    reason = response.json().get("error", "") if is_json else ""
                    errors[f"{response.status_code} {reason[:60]}"] += 1
        return latencies, errors

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(phase.concurrency) as pool:
        for latencies, errors in pool.map(lambda _: worker(), range(phase.concurrency)):
            phase.latencies_s += latencies
            phase.errors += errors
    phase.seconds = time.perf_counter() - started
    phase.rss_after_mb = _rss_mb(pid)
    return phase


def series_files(image: Path) -> dict[str, tuple[str, bytes]]:
    stem = str(image)[: -len(".nii.gz")] if image.name.endswith(".nii.gz") else str(image.with_suffix(""))
    files = {
        "dwi": ("dwi.nii.gz", image.read_bytes()),
        "bval": ("dwi.bval", Path(stem + ".bval").read_bytes()),
        "bvec": ("dwi.bvec", Path(stem + ".bvec").read_bytes()),
    }
    if Path(stem + ".json").is_file():
        files["sidecar"] = ("dwi.json", Path(stem + ".json").read_bytes())
    return files


def slice_png(image: Path) -> bytes:
    """The middle slice of the first volume as an 8-bit PNG."""
    import nibabel as nib
    from PIL import Image

    volume = np.asarray(nib.load(str(image)).dataobj[..., 0], dtype=np.float64)
    plane = volume[:, :, volume.shape[2] // 2]
    scaled = np.clip(plane / max(np.percentile(plane, 99), 1e-12), 0, 1)
    buffer = io.BytesIO()
    Image.fromarray(np.rot90(scaled * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def table(phases: list[Phase]) -> str:
    header = (
        f"{'endpoint':<12} {'conc':>4} {'requests':>8} {'errors':>6} {'req/s':>8} "
        f"{'p50 ms':>9} {'p95 ms':>9} {'RSS before':>11} {'RSS after':>10}"
    )
    lines = [header, "-" * len(header)]
    for p in phases:
        lat = np.array(p.latencies_s) * 1000
        p50, p95 = (f"{np.percentile(lat, 50):.1f}", f"{np.percentile(lat, 95):.1f}") if lat.size else ("-", "-")
        mem = [f"{m:.0f} MiB" if m is not None else "n/a" for m in (p.rss_before_mb, p.rss_after_mb)]
        lines.append(
            f"{p.name:<12} {p.concurrency:>4} {p.requests:>8} {sum(p.errors.values()):>6} "
            f"{len(p.latencies_s) / p.seconds:>8.2f} {p50:>9} {p95:>9} {mem[0]:>11} {mem[1]:>10}"
        )
    for p in phases:
        for reason, count in p.errors.most_common(3):
            lines.append(f"  {p.name} error x{count}: {reason}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="use a running server instead of starting one (memory then unknown)")
    parser.add_argument("--seconds", type=float, default=15.0, help="time per endpoint, s")
    parser.add_argument("--concurrency", type=int, default=8, help="clients for /api/health")
    parser.add_argument("--heavy-concurrency", type=int, default=2, help="clients for /api/check and /api/ask")
    parser.add_argument("--series", type=Path, default=DEFAULT_SERIES, help="4D NIfTI with .bval/.bvec beside it")
    parser.add_argument("--skip", nargs="*", default=[], choices=["health", "check", "ask"])
    args = parser.parse_args()

    files = series_files(args.series)
    png = slice_png(args.series)
    with contextlib.ExitStack() as stack:
        if args.url:
            base, pid = args.url.rstrip("/"), None
        else:
            base, pid = stack.enter_context(running_server(max_upload_mb=512))
        print(f"server {base}, series {args.series.name}, {args.seconds:g} s per endpoint", flush=True)
        phases = []
        if "health" not in args.skip:
            health = Phase("health", args.concurrency)
            phases.append(hammer(health, lambda c: c.get(f"{base}/api/health"), seconds=args.seconds, pid=pid))
        if "check" not in args.skip:
            # One client keeps asking /api/health while the checks run: the event loop must stay free.
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                check = pool.submit(
                    hammer,
                    Phase("check", args.heavy_concurrency),
                    lambda c: c.post(f"{base}/api/check", files=files),
                    seconds=args.seconds,
                    pid=pid,
                )
                during = pool.submit(
                    hammer, Phase("health*", 1), lambda c: c.get(f"{base}/api/health"), seconds=args.seconds, pid=None
                )
                phases += [check.result(), during.result()]
        if "ask" not in args.skip:
            data = {"question": "Which problems do you see in this image?"}
            phases.append(
                hammer(
                    Phase("ask", args.heavy_concurrency),
                    lambda c: c.post(f"{base}/api/ask", files={"image": ("slice.png", png)}, data=data),
                    seconds=args.seconds,
                    pid=pid,
                )
            )
        print(table(phases))


if __name__ == "__main__":
    main()
