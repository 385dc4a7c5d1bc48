"""Wall time and peak memory of ``lcid check`` per shared real series, against DIPY.

For each series in ``../shared/data/dwi``: the median (over ``--repeats`` runs, each in a
fresh subprocess limited to ``--threads`` threads) of the wall time of
``run_check(load_dwi(path))`` and the process's peak resident memory, and, in the same
run, the time of the alternative a user would run for motion: DIPY's volume-by-volume
``affine_registration`` (mutual information, DIPY's default pipeline
center_of_mass -> translation -> rigid -> affine and default pyramid) of every volume to
the b0. DIPY takes tens of seconds per volume, so by default it registers
``--dipy-volumes`` diffusion-weighted volumes and extrapolates to the whole series (the
table says so); ``--dipy-volumes 0`` registers them all.

Run: ``.venv/bin/python bench/check_speed.py [--repeats 3] [--threads 2] [--dipy-volumes 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure_check(path: str) -> dict:
    """In this process: load + full check; wall seconds, peak RSS (MiB), detectors run."""
    import importlib
    import resource
    import time

    from lcid.dwi.check import run_check
    from lcid.dwi.vocabulary import PROBLEM_IDS
    from lcid.io.nifti import load_dwi

    present = []
    for problem in PROBLEM_IDS:
        try:
            importlib.import_module(f"lcid.dwi.problems.{problem}")
            present.append(problem)
        except ModuleNotFoundError:
            pass
    start = time.perf_counter()
    scan = load_dwi(path)
    loaded = time.perf_counter()
    marks: list[tuple[str, float]] = []
    findings = run_check(scan, problems=tuple(present), progress=lambda p: marks.append((p, time.perf_counter())))
    end = time.perf_counter()
    marks.append(("", end))
    per_detector = {p: marks[i + 1][1] - t for i, (p, t) in enumerate(marks[:-1])}
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    doc = {f.problem: f for f in findings.findings}
    motion, eddy = doc.get("motion"), doc.get("eddy_current")
    return {
        "load_s": loaded - start,
        "check_s": end - loaded,
        "total_s": end - start,
        "peak_mib": peak_mib,
        "motion_eddy_s": per_detector.get("motion", 0.0) + per_detector.get("eddy_current", 0.0),
        "missing": [p for p in PROBLEM_IDS if p not in present],
        "motion": dict(motion.to_dict()["metrics"], severity=motion.severity) if motion else None,
        "eddy_current": dict(eddy.to_dict()["metrics"], severity=eddy.severity) if eddy else None,
    }


def measure_dipy(path: str, n_volumes: int) -> dict:
    """DIPY volume-by-volume affine registration to the b0; seconds per volume and in total."""
    import time

    import numpy as np
    from dipy.align import affine_registration

    from lcid.dwi.gradients import b0_mask
    from lcid.io.nifti import load_dwi

    scan = load_dwi(path)
    is_b0 = b0_mask(scan.bvals)
    b0 = scan.data[..., is_b0].mean(axis=3) if is_b0.any() else scan.data[..., 0]
    moving = [v for v in range(scan.n_volumes) if not is_b0[v] or v > int(np.argmax(is_b0))]
    chosen = moving if n_volumes <= 0 else moving[:n_volumes]
    start = time.perf_counter()
    for v in chosen:
        affine_registration(
            scan.data[..., v],
            b0,
            moving_affine=scan.affine,
            static_affine=scan.affine,
            pipeline=["center_of_mass", "translation", "rigid", "affine"],
        )
    seconds = time.perf_counter() - start
    per_volume = seconds / max(len(chosen), 1)
    return {
        "per_volume_s": per_volume,
        "series_s": per_volume * len(moving),
        "measured_volumes": len(chosen),
        "volumes": len(moving),
    }


def _subprocess(args: list[str], threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), LCID_BENCH_THREADS=str(threads))
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dipy-volumes", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="series names to run (default: all)")
    parser.add_argument("--worker", choices=["check", "dipy"], help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        import torch

        torch.set_num_threads(int(os.environ.get("LCID_BENCH_THREADS", "2")))
        result = measure_check(args.path) if args.worker == "check" else measure_dipy(args.path, args.dipy_volumes)
        print(json.dumps(result, default=float))
        return

    sys.path.insert(0, str(ROOT))
    from tqdm import tqdm

    from tests.conftest import REAL_SERIES

    names = args.only or list(REAL_SERIES)
    rows = []
    for name in tqdm(names, desc="series", file=sys.stderr):
        path = str(REAL_SERIES[name])
        runs = [_subprocess(["--worker", "check", "--path", path], args.threads) for _ in range(args.repeats)]
        dipy = _subprocess(["--worker", "dipy", "--path", path, "--dipy-volumes", str(args.dipy_volumes)], args.threads)
        rows.append((name, runs, dipy))

    print(f"\nlcid check vs DIPY volume-by-volume affine registration ({args.threads} threads, "
          f"median of {args.repeats} check runs)\n")
    header = (f"{'series':<16} {'shape':>18} {'load s':>7} {'check s':>8} {'mot+eddy s':>10} {'peak MiB':>9} "
              f"{'DIPY s/vol':>10} {'DIPY series s':>13} {'ratio':>6}  motion max FD mm | eddy vox, R2")
    print(header)
    print("-" * len(header))
    for name, runs, dipy in rows:
        from lcid.io.nifti import load_dwi

        shape = "x".join(str(s) for s in load_dwi(REAL_SERIES[name]).shape)
        check = statistics.median(r["check_s"] for r in runs)
        load = statistics.median(r["load_s"] for r in runs)
        aligned = statistics.median(r["motion_eddy_s"] for r in runs)
        peak = max(r["peak_mib"] for r in runs)
        extrapolated = "" if dipy["measured_volumes"] == dipy["volumes"] else f"*{dipy['measured_volumes']}"
        motion, eddy = runs[0]["motion"], runs[0]["eddy_current"]
        m = f"{motion['max_fd_mm']:.2f} ({motion['severity']})" if motion and "max_fd_mm" in motion else "n/a"
        e = (f"{eddy['max_displacement_vox']:.2f}, {eddy['fit_r2']:.2f} ({eddy['severity']})"
             if eddy and "max_displacement_vox" in eddy else "n/a")
        print(f"{name:<16} {shape:>18} {load:>7.2f} {check:>8.2f} {aligned:>10.2f} {peak:>9.0f} {dipy['per_volume_s']:>10.1f} "
              f"{dipy['series_s']:>12.0f}{extrapolated:<2}{dipy['series_s'] / check:>5.0f}x  {m} | {e}")
    missing = sorted({p for _, runs, _ in rows for p in runs[0]["missing"]})
    print("\ncheck s: run_check only (all detectors, incl. context); mot+eddy s: the motion and eddy_current")
    print("detectors (their shared alignment included); load s: reading the NIfTI and gradients.")
    print("*k: DIPY time measured on k volumes and extrapolated to the series.")
    if missing:
        print(f"detectors not present at this run (not timed): {', '.join(missing)}")


if __name__ == "__main__":
    main()
