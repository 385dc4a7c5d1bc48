"""Build the DWI vision-language data set from the artifact simulator.

Per simulated scan (a source series, a draw of 0-2 problems with severities, a seed):

1. Gradient-table problems (``few_directions``, ``gradient_table``) are injected into the
   whole series and the acquisition facts are read from the resulting table.
2. A b0 and three diffusion-weighted volumes are kept (what a slice picture needs; this makes
   the image problems 4-5x cheaper to simulate) and the image problems are injected one by
   one, in the order they arise in an acquisition (:data:`lcid.simulate.inject.ACQUISITION_ORDER`),
   keeping each conspicuity-checked artifact's own contribution (after minus before).
3. Views (volume, plane, slice) are drawn, half of them aimed at where a slice-level problem
   sits, and rendered as a viewer shows them (:mod:`lcid.vlm.render`).
4. Each picture gets questions with or without acquisition text; labels are what that picture
   and text honestly show (:mod:`lcid.vlm.dwi.visibility`: geometry, and for ghosting, spikes
   and Gibbs ringing the Rose criterion on the artifact's contribution in that picture,
   :mod:`lcid.vlm.dwi.conspicuity`), including what a real source series already had before
   simulation (:mod:`lcid.vlm.dwi.native`); the answer is written from the
   knowledge base (:mod:`lcid.vlm.dwi.text`).

Everything is drawn from one seed; simulated scans are cached (float16) by their recipe.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lcid.dwi.gradients import b0_mask
from lcid.dwi.vocabulary import PROBLEM_IDS
from lcid.errors import InputError
from lcid.io.atomic import atomic_dir
from lcid.io.scan import DWIScan
from lcid.simulate.anatomy import object_mask, pe_axis, slice_axis
from lcid.vlm.dwi.conspicuity import CONSPICUITY_PROBLEMS, view_detectability
from lcid.vlm.dwi.native import native_problems, with_native
from lcid.vlm.dwi.text import (
    QUESTIONS,
    acquisition_facts,
    acquisition_text,
    few_directions_severity,
    random_acquisition,
    reference_answer,
)
from lcid.vlm.dwi.visibility import SliceView, visible_labels
from lcid.vlm.render import PLANES, plane_axis, render_slice, save_png, window_limits

DWI_DIR = Path(__file__).resolve().parents[4] / ".." / "shared" / "data" / "dwi"
#: Real series: name -> (scanner, image path relative to the shared dwi folder).
REAL_SERIES: dict[str, tuple[str, str]] = {
    "siemens_prisma_ap": ("siemens_prisma", "siemens_prisma_xa30_ap_pa_20dir/DWI_dir80_AP.nii.gz"),
    "siemens_prisma_pa": ("siemens_prisma", "siemens_prisma_xa30_ap_pa_20dir/DWI_dir80_PA.nii.gz"),
    "philips_elition": ("philips_elition", "philips_elition_16dir_b1000/2201_WIP_DTI_S2MB2.nii.gz"),
    "philips_achieva": ("philips_achieva", "philips_achieva_dstream_15dir_b2000/WIP_dti_ax_601.nii.gz"),
}
#: Sources whose pictures are only used for evaluation (a scanner and a phantom never trained on).
HOLDOUT: tuple[str, ...] = ("philips_achieva", "phantom_2")
TRAIN_SOURCES: tuple[str, ...] = ("siemens_prisma_ap", "siemens_prisma_pa", "philips_elition", "phantom_0", "phantom_1")
TABLE_PROBLEMS: tuple[str, ...] = ("few_directions", "gradient_table")
SEVERITIES: tuple[str, ...] = ("mild", "moderate", "severe")
MANIFEST = "manifest.jsonl"
KEPT_DW_VOLUMES = 3
#: Version of what a cached simulation holds (2: with the artifacts' contributions).
CACHE_FORMAT = 2
#: Fraction of questions that come with whole-series findings (as from ``lcid check``).
FINDINGS_FRACTION = 0.15
#: Fraction of acquisition texts that state a random table (:func:`random_acquisition`) instead
#: of the series' own; the text-visible labels follow the stated table.
RANDOM_ACQ_FRACTION = 0.5


@dataclass(frozen=True)
class BuildSettings:
    """How many and which samples.

    Attributes
    ----------
    n
        Number of pictures (each gets ``questions_per_image`` questions).
    seed
        Seed of every random choice.
    sources
        Source names: keys of :data:`REAL_SERIES` or ``phantom_<seed>``.
    views_per_scan
        Pictures drawn from each simulated scan.
    questions_per_image
        Question/answer pairs per picture (different question and acquisition text).
    data_dir
        Folder of the shared real series.
    phantom_shape
        Grid of the synthetic phantoms (voxels).
    """

    n: int = 2000
    seed: int = 0
    sources: tuple[str, ...] = (*TRAIN_SOURCES, *HOLDOUT)
    views_per_scan: int = 10
    questions_per_image: int = 2
    data_dir: str = str(DWI_DIR)
    phantom_shape: tuple[int, int, int] = (64, 64, 40)


def scanner_of(source: str) -> str:
    """Scanner (or ``phantom``) of a source name."""
    return "phantom" if source.startswith("phantom_") else REAL_SERIES[source][0]


def split_of(source: str) -> str:
    """``test`` for held-out sources, else ``train``."""
    return "test" if source in HOLDOUT else "train"


def load_source(source: str, *, settings: BuildSettings, cache: Path | None) -> DWIScan:
    """A source series: a real one from the shared data, or ``phantom_<seed>``."""
    if source.startswith("phantom_"):
        from lcid.simulate.phantom import make_phantom

        return make_phantom(shape=settings.phantom_shape, seed=int(source.split("_", 1)[1]))
    if source not in REAL_SERIES:
        raise InputError(f"unknown source {source} (known: {', '.join(REAL_SERIES)}, phantom_<seed>)")
    path = Path(settings.data_dir) / REAL_SERIES[source][1]
    if not path.is_file():
        raise InputError(f"real series {path} not found (give --data-dir)")
    from lcid.io.nifti import load_dwi

    return load_dwi(path)


def draw_problems(rng: np.random.Generator) -> list[tuple[str, str]]:
    """0 (15 %), 1 (65 %) or 2 (20 %) distinct problems with random severities."""
    u = rng.random()
    count = 0 if u < 0.15 else 1 if u < 0.8 else 2
    chosen = rng.choice(len(PROBLEM_IDS), size=count, replace=False)
    return [(PROBLEM_IDS[int(i)], SEVERITIES[int(rng.integers(3))]) for i in chosen]


def keep_volumes(scan: DWIScan, rng: np.random.Generator) -> list[int]:
    """The first b0 and :data:`KEPT_DW_VOLUMES` random diffusion-weighted volumes (sorted)."""
    b0 = np.flatnonzero(b0_mask(scan.bvals))
    dw = np.flatnonzero(~b0_mask(scan.bvals))
    chosen = rng.choice(dw, size=min(KEPT_DW_VOLUMES, dw.size), replace=False) if dw.size else []
    return sorted({int(b0[0]) if b0.size else 0, *(int(v) for v in chosen)})


def simulate_scan(
    scan: DWIScan, problems: Sequence[tuple[str, str]], *, seed: int
) -> tuple[DWIScan, dict, dict[str, Any], dict[str, np.ndarray]]:
    """Inject ``problems`` as the module docstring says.

    Returns (scan subset, truth, facts, deltas): ``deltas`` maps each injected problem of
    :data:`CONSPICUITY_PROBLEMS` to its mark on the final series (float32, the scan's shape;
    :func:`artifact_mark`). Problems that change the grid come
    earlier in the acquisition order, so the contributions stay on the final grid.
    A problem whose severity cannot be reached on this scan is dropped from the truth.
    """
    from lcid.simulate import inject
    from lcid.simulate.inject import ACQUISITION_ORDER

    rng = np.random.default_rng(seed)
    entries: list[dict] = []
    for problem, severity in problems:
        if problem in TABLE_PROBLEMS:
            try:
                scan, truth = inject(scan, [(problem, severity)], seed=int(rng.integers(2**31)))
            except InputError:
                continue
            entries += truth["problems"]
    facts = acquisition_facts(scan.bvals, scan.bvecs, voxel_mm=scan.voxel_size_mm)
    kept = keep_volumes(scan, rng)
    scan = scan.replace(data=np.ascontiguousarray(scan.data[..., kept]), bvals=scan.bvals[kept], bvecs=scan.bvecs[kept])
    deltas: dict[str, np.ndarray] = {}
    for problem, severity in sorted(problems, key=lambda p: ACQUISITION_ORDER.index(p[0])):
        if problem in TABLE_PROBLEMS:
            continue
        try:
            after, truth = inject(scan, [(problem, severity)], seed=int(rng.integers(2**31)))
        except InputError:
            continue
        if after.shape != scan.shape:  # a change of grid: earlier contributions no longer align
            deltas = {}
        if problem in CONSPICUITY_PROBLEMS:
            deltas[problem] = artifact_mark(scan, problem, truth["problems"][0]["parameters"])
        scan = after
        entries += truth["problems"]
    if any(e["problem"] in ("low_resolution", "fov_cutoff") for e in entries):
        facts["voxel_mm"] = [round(float(v), 2) for v in scan.voxel_size_mm]
    return scan, {"problems": entries, "kept_volumes": kept}, facts, deltas


def artifact_mark(scan: DWIScan, problem: str, params: dict[str, Any]) -> np.ndarray:
    """The structured mark that ``problem`` with the drawn ``params`` leaves on ``scan``.

    The artifact is applied again, with the same parameters, to the series with its noise
    removed (a 3x3x3 median filter per volume, which keeps edges and so the rings at them),
    and the mark is after minus before. On the noisy series itself, after minus before
    would also hold the artifact's action on the noise (truncation removes high-frequency
    noise, a ghost copies the noise): a change of the noise realisation, which no reader can
    tell from noise but which the detectability measure would count as signal.
    """
    from scipy import ndimage

    from lcid.simulate.artifacts import artifact

    smooth = ndimage.median_filter(scan.data, size=(3, 3, 3, 1), mode="nearest")
    before = scan.replace(data=smooth.astype(np.float32))
    after, _ = artifact(problem).apply(before, params)
    return (after.data - before.data).astype(np.float32)


def cached_simulation(
    scan: DWIScan, source: str, problems: Sequence[tuple[str, str]], *, seed: int, cache: Path | None
) -> tuple[DWIScan, dict, dict[str, Any], dict[str, np.ndarray]]:
    """:func:`simulate_scan` through a cache of float16 ``.npz`` files keyed by the recipe,
    :data:`CACHE_FORMAT` and the simulator's code
    (:func:`lcid.simulate.fingerprint.simulator_fingerprint`)."""
    from lcid.simulate.fingerprint import simulator_fingerprint

    recipe = [source, list(map(list, problems)), seed, scan.shape, simulator_fingerprint(), CACHE_FORMAT]
    key = hashlib.sha1(json.dumps(recipe).encode()).hexdigest()[:16]
    path = cache / f"{key}.npz" if cache is not None else None
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            data = z["data"].astype(np.float32) * np.float32(z["scale"])
            sim = DWIScan(data=data, affine=z["affine"], bvals=z["bvals"], bvecs=z["bvecs"],
                          sidecar=meta["sidecar"], path=scan.path)
            deltas = {p: z[f"delta_{p}"].astype(np.float32) * np.float32(z[f"scale_{p}"]) for p in meta["deltas"]}
            return sim, meta["truth"], meta["facts"], deltas
    sim, truth, facts, deltas = simulate_scan(scan, problems, seed=seed)
    # Quantise as the cache stores it, so that a first build and a cached rebuild are identical.
    half, scale = _half(sim.data)
    sim = sim.replace(data=half.astype(np.float32) * np.float32(scale))
    halves = {p: _half(d) for p, d in deltas.items()}
    deltas = {p: h.astype(np.float32) * np.float32(sc) for p, (h, sc) in halves.items()}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps({"truth": truth, "facts": facts, "sidecar": sim.sidecar, "deltas": list(deltas)},
                          default=_json_default)
        extra = {f"delta_{p}": h for p, (h, _) in halves.items()}
        extra.update({f"scale_{p}": np.array(sc) for p, (_, sc) in halves.items()})
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, data=half, scale=np.array(scale), affine=sim.affine, bvals=sim.bvals,
                            bvecs=sim.bvecs, meta=np.array(meta), **extra)
        tmp.replace(path)
    return sim, json.loads(json.dumps(truth, default=_json_default)), facts, deltas


def _half(data: np.ndarray) -> tuple[np.ndarray, float]:
    """``data`` as float16 and the scale that maps it back (float16 tops out at 65504)."""
    scale = max(float(np.abs(data).max()) / 60000.0, 1e-12) if data.size else 1.0
    return (data / scale).astype(np.float16), scale


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value).__name__)


def check_findings(truth: dict, facts: dict[str, Any]) -> dict[str, str]:
    """What ``lcid check`` on the whole series would report, from the simulator's truth:
    ``{problem: severity}`` of every injected problem, with few_directions following the
    table in ``facts`` (graded on its best shell, :func:`few_directions_severity`), so that
    findings and a stated table never disagree."""
    found = {e["problem"]: e["severity"] for e in truth["problems"] if e["problem"] != "few_directions"}
    severity = few_directions_severity(facts)
    if severity != "none":
        found["few_directions"] = severity
    return dict(sorted(found.items(), key=lambda kv: PROBLEM_IDS.index(kv[0])))


def draw_views(scan: DWIScan, truth: dict, rng: np.random.Generator, *, count: int) -> list[tuple[str, int, int]]:
    """``count`` pictures ``(plane, slice index, volume)``; half aim at slice-level problems."""
    mask = object_mask(scan)
    s_axis = slice_axis(scan)
    pairs = [p for e in truth["problems"] if e["problem"] in ("missing_slices", "spikes") for p in e["where"].get("pairs", [])]
    moved = [v for e in truth["problems"] if e["problem"] == "motion" and e["parameters"].get("mode") == "interleaved"
             for v in e["where"].get("volumes", [])]
    views = []
    for i in range(count):
        plane = PLANES[int(rng.integers(3))]
        axis = plane_axis(scan.affine, plane)
        volume = int(rng.integers(scan.n_volumes))
        index = _object_slice(mask, axis, rng)
        if i % 2 == 0 and pairs:
            volume, s = (int(x) for x in pairs[int(rng.integers(len(pairs)))])
            if axis == s_axis:
                index = s
        elif i % 2 == 0 and moved:
            volume = int(moved[int(rng.integers(len(moved)))])
            if axis == s_axis:  # interleaved shifts show across slices
                plane = next(p for p in PLANES if plane_axis(scan.affine, p) != s_axis)
                axis = plane_axis(scan.affine, plane)
                index = _object_slice(mask, axis, rng)
        views.append((plane, int(index), volume))
    return views


def _object_slice(mask: np.ndarray, axis: int, rng: np.random.Generator) -> int:
    """A slice through the middle 70 % of the object along ``axis``."""
    occupied = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
    if occupied.size == 0:
        return mask.shape[axis] // 2
    lo, hi = occupied.min(), occupied.max()
    margin = 0.15 * (hi - lo)
    return int(rng.integers(int(lo + margin), int(hi - margin) + 1))


def _fields(scan: DWIScan, facts: dict[str, Any], volume: int) -> dict[str, Any]:
    """Knowledge-base template fields known for a picture."""
    voxel = scan.voxel_size_mm
    axis = scan.phase_encoding_axis
    names = {0: "the i axis (left-right)", 1: "the j axis (anterior-posterior)", 2: "the k axis"}
    return {
        "volumes": str(volume),
        "voxel": "x".join(f"{v:g}" for v in np.round(voxel, 2)) + " mm",
        "max_voxel_mm": f"{max(voxel):g}",
        "best_directions": facts["best_directions"],
        "shells": ", ".join(f"b={b}" for b in facts["dw_shells"]),
        **({"pe_axis": names[axis]} if axis is not None else {}),
    }


def build(
    out_dir: str | Path,
    *,
    settings: BuildSettings,
    cache: Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Write ``out_dir/images/*.png`` and ``out_dir/manifest.jsonl`` (one JSON object per
    question) plus ``build.json`` (the settings). Same settings, same bytes.

    Manifest fields: ``id, image, question, answer, acq, findings, labels, detectability,
    hidden, severities, injected, native, source, scanner, split, plane, slice, volume,
    original_volume, bval, seed``. ``native`` (``{problem: severity}``) holds what ``lcid check``
    finds in the real source series itself (:mod:`lcid.vlm.dwi.native`); ``build.json``
    records it per source. ``detectability`` is ``{problem: d'}`` of the
    conspicuity-checked artifacts in the picture; ``hidden`` the problems that the geometric
    rules alone would have labelled but that stay under the Rose criterion there.
    ``findings`` (``{problem: severity}`` or null) stands for ``lcid check`` results passed in
    with the picture; its problems are then labelled too (the answer is grounded in them).
    """
    out_dir = Path(out_dir)
    sources = list(settings.sources)
    if not sources:
        raise InputError("no sources to build from")
    n_scans = max(1, -(-settings.n // settings.views_per_scan))
    root = np.random.default_rng(settings.seed)
    train = [s for s in sources if split_of(s) == "train"] or sources
    test = [s for s in sources if split_of(s) == "test"] or sources
    # one scan in five from a held-out source: enough to evaluate, most pictures to train on
    plan = [((test[(i // 5) % len(test)] if i % 5 == 4 else train[(i - i // 5) % len(train)]), int(root.integers(2**31)))
            for i in range(n_scans)]
    rows: list[dict[str, Any]] = []
    loaded: dict[str, DWIScan] = {}
    native: dict[str, list[dict[str, Any]]] = {}  # truth entries of what each real source already has
    native_record: dict[str, dict[str, str]] = {}  # the same as {problem: severity}, for rows and build.json
    with atomic_dir(out_dir) as tmp:
        (tmp / "images").mkdir()
        count = 0
        for scan_no, (source, scan_seed) in enumerate(tqdm(plan, desc="simulate", disable=not progress)):
            if source not in loaded:
                loaded[source] = load_source(source, settings=settings, cache=cache)
                native[source] = [] if scanner_of(source) == "phantom" else native_problems(loaded[source])
                native_record[source] = {e["problem"]: e["severity"] for e in native[source]}
            rng = np.random.default_rng(scan_seed)
            problems = draw_problems(rng)
            sim, truth, facts, deltas = cached_simulation(loaded[source], source, problems, seed=scan_seed, cache=cache)
            injected = {e["problem"]: e["severity"] for e in truth["problems"]}
            truth = with_native(truth, native[source])
            had = native_record[source]
            s_axis, p_axis = slice_axis(sim), pe_axis(sim)
            mask = object_mask(sim) if deltas else None
            for plane, index, volume in draw_views(sim, truth, rng, count=settings.views_per_scan):
                if count >= settings.n:
                    break
                axis = plane_axis(sim.affine, plane)
                vol = sim.data[..., volume]
                limits = window_limits(vol)
                picture = render_slice(vol, sim.affine, plane=plane, index=index, limits=limits)
                name = f"images/{count:06d}.png"
                save_png(picture, tmp / name)
                seen = view_detectability(vol, {p: d[..., volume] for p, d in deltas.items()}, sim.affine,
                                          plane=plane, index=index, limits=limits, mask=mask)
                view = SliceView(volume=volume, axis=axis, index=index, slice_axis=s_axis, pe_axis=p_axis,
                                 detectability=seen)
                geometric = replace(view, detectability=None)
                hidden = sorted(set(visible_labels(truth, geometric, acq_facts=None))
                                - set(visible_labels(truth, view, acq_facts=None)))
                for q in range(settings.questions_per_image):
                    with_acq = rng.random() < 0.6
                    # the stated table: the series' own, or (half the time) random counts and
                    # b-values, so that the text's numbers are read, not remembered
                    stated = random_acquisition(rng, facts) if with_acq and rng.random() < RANDOM_ACQ_FRACTION else facts
                    labels = visible_labels(truth, view, acq_facts=stated if with_acq else None)
                    findings = None
                    if rng.random() < FINDINGS_FRACTION:
                        findings = check_findings(truth, stated)
                        labels = tuple(sorted({*labels, *findings}, key=PROBLEM_IDS.index))
                    severities = {p: injected.get(p, had.get(p, (findings or {}).get(p, "mild"))) for p in labels}
                    if with_acq and "few_directions" in labels:
                        severities["few_directions"] = few_directions_severity(stated)
                    question = QUESTIONS[int(rng.integers(len(QUESTIONS)))]
                    variant = int(rng.integers(1000))
                    rows.append({
                        "id": f"{count:06d}-{q}",
                        "image": name,
                        "question": question,
                        "answer": reference_answer(question, labels, severities=severities,
                                                   fields=_fields(sim, stated, volume), variant=variant),
                        "acq": acquisition_text(stated, style=variant) if with_acq else None,
                        "findings": findings,
                        "labels": list(labels),
                        "detectability": seen,
                        "hidden": [p for p in hidden if p not in labels],
                        "severities": severities,
                        "injected": injected,
                        "native": had,
                        "source": source,
                        "scanner": scanner_of(source),
                        "split": split_of(source),
                        "plane": plane,
                        "slice": index,
                        "volume": volume,
                        "original_volume": int(truth["kept_volumes"][volume]),
                        "bval": int(round(float(sim.bvals[volume]))),
                        "seed": scan_seed,
                    })
                count += 1
            if log is not None and scan_no == 0:
                log(f"first scan: {source} with {problems or 'no problem'}")
        (tmp / MANIFEST).write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
        (tmp / "build.json").write_text(json.dumps({**settings.__dict__, "holdout": list(HOLDOUT),
                                                    "native": native_record, "n_questions": len(rows)},
                                                   indent=2, default=list) + "\n")
    return out_dir


def read_manifest(data_dir: str | Path, *, split: str | None = None) -> list[dict[str, Any]]:
    """The manifest rows (optionally of one split), with ``image`` made an absolute path."""
    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        raise InputError(f"no {MANIFEST} in {data_dir} (make one with lcid data build-vlm)")
    rows = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path.name} line {line_no} is not JSON") from exc
        if split is None or row.get("split") == split:
            row["image"] = str(Path(data_dir) / row["image"])
            rows.append(row)
    return rows
