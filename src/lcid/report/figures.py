"""Figures of the report: pure functions from arrays to PNG bytes.

Every function builds its own :class:`matplotlib.figure.Figure` on the Agg canvas (no
pyplot state, no display), labels axes with units, highlights flagged items in red, and
returns the PNG as bytes. Arrays are in voxel order unless a docstring says otherwise.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

FLAG = "#d62728"  # red: flagged items
OK = "#1f77b4"  # blue: normal items
EDGE = "#f2c200"  # yellow: field-of-view edge
DPI = 96


def to_png(fig: Figure) -> bytes:
    """Render a figure to PNG bytes (Agg)."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", facecolor="white", metadata={"Software": None})
    return buffer.getvalue()


def _window(image: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float]:
    """Display range: 0.5th-99.5th percentile of the object (or of all non-zero voxels)."""
    values = image[mask] if mask is not None and mask.any() else image[image > 0]
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, [0.5, 99.5])
    return float(min(low, 0.0)), float(high if high > low else low + 1.0)


def display_plane(plane: np.ndarray, affine: np.ndarray | None) -> np.ndarray:
    """Orient a slice ``plane[axis0, axis1]`` for ``imshow(..., origin="lower")``.

    Rows of the result run bottom to top (anterior or superior up), columns left to right
    (patient right on the right: neurological view). Without an affine the plane is only
    transposed.
    """
    image = np.asarray(plane, dtype=float).T  # rows = axis 1, columns = axis 0
    if affine is None:
        return image
    from nibabel.orientations import io_orientation

    ornt = io_orientation(np.asarray(affine, dtype=float))
    if np.isnan(ornt[:2]).any():
        return image
    world = ornt[:2, 0].astype(int)
    if world[0] > world[1]:  # axis 0 is more vertical in the world than axis 1
        image = image.T
        ornt = ornt[::-1]
    if ornt[0, 1] < 0:
        image = image[:, ::-1]
    if ornt[1, 1] < 0:
        image = image[::-1, :]
    return image


def mosaic(
    volume: np.ndarray,
    *,
    title: str,
    affine: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    n_slices: int = 12,
    highlight: Sequence[int] = (),
    columns: int = 6,
) -> bytes:
    """Grid of slices along the third voxel axis (the acquired slices).

    Parameters
    ----------
    volume
        Image ``(X, Y, Z)``.
    mask
        Object mask ``(X, Y, Z)``: slices are chosen where it has voxels, and it sets the window.
    highlight
        Slice indices to outline in red (e.g. slices with dropout); always shown.
    """
    volume = np.nan_to_num(np.asarray(volume, dtype=float))
    n_z = volume.shape[2]
    occupied = np.flatnonzero(mask.any(axis=(0, 1))) if mask is not None and mask.any() else np.arange(n_z)
    chosen = set(np.unique(np.linspace(occupied[0], occupied[-1], min(n_slices, occupied.size)).round().astype(int)))
    chosen |= {int(s) for s in highlight if 0 <= int(s) < n_z}
    slices = sorted(chosen)
    rows = -(-len(slices) // columns)
    cols = min(columns, len(slices))
    fig = Figure(figsize=(1.8 * cols, 1.9 * rows + 0.5))
    vmin, vmax = _window(volume, mask)
    flagged = {int(s) for s in highlight}
    for i, k in enumerate(slices):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(display_plane(volume[:, :, k], affine), cmap="gray", vmin=vmin, vmax=vmax, origin="lower")
        ax.set_xticks([])
        ax.set_yticks([])
        color = FLAG if k in flagged else "black"
        ax.set_title(f"slice {k}", fontsize=8, color=color)
        if k in flagged:
            for spine in ax.spines.values():
                spine.set_edgecolor(FLAG)
                spine.set_linewidth(3)
    fig.suptitle(title, fontsize=11)
    return to_png(fig)


def volume_trace(
    values: np.ndarray,
    *,
    title: str,
    ylabel: str,
    flagged: Sequence[int] = (),
    thresholds: Mapping[str, float] | None = None,
    extra: Mapping[str, np.ndarray] | None = None,
) -> bytes:
    """A per-volume measurement (e.g. framewise displacement in mm) against volume index.

    Parameters
    ----------
    values
        One value per volume, ``(N,)``.
    flagged
        Volume indices drawn as red dots.
    thresholds
        Horizontal reference lines, label -> value (e.g. ``{"mild": 1.0}``).
    extra
        Further traces for a second panel, label -> ``(N,)`` or ``(N, 3)`` (e.g.
        translations in mm along x, y, z).
    """
    values = np.asarray(values, dtype=float).ravel()
    x = np.arange(values.size)
    panels = 2 if extra else 1
    fig = Figure(figsize=(8, 2.6 * panels + 0.3))
    ax = fig.add_subplot(panels, 1, 1)
    ax.plot(x, values, "-o", color=OK, markersize=3, linewidth=1, label=ylabel)
    bad = [int(v) for v in flagged if 0 <= int(v) < values.size]
    if bad:
        ax.plot(bad, values[bad], "o", color=FLAG, markersize=7, label="flagged volumes")
    styles = iter(["--", ":", "-."])
    for label, level in (thresholds or {}).items():
        ax.axhline(level, color="grey", linestyle=next(styles, "--"), linewidth=1, label=f"{label} ({level:g})")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    if extra:
        ax2 = fig.add_subplot(panels, 1, 2, sharex=ax)
        for label, trace in extra.items():
            trace = np.asarray(trace, dtype=float)
            if trace.ndim == 2 and trace.shape[1] == 3:
                for j, axis in enumerate("xyz"):
                    ax2.plot(x[: len(trace)], trace[:, j], linewidth=1, label=f"{label} {axis}")
            else:
                ax2.plot(x[: len(trace)], trace.ravel(), linewidth=1, label=label)
        ax2.legend(fontsize=8, ncol=3, loc="upper right")
        ax2.grid(alpha=0.3)
        ax2.set_xlabel("volume index (0-based)")
    else:
        ax.set_xlabel("volume index (0-based)")
    return to_png(fig)


def slice_map(
    scores: np.ndarray,
    *,
    title: str,
    colorbar_label: str,
    pairs: Sequence[Sequence[int]] = (),
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
) -> bytes:
    """Volume-by-slice map (e.g. signal loss), with flagged ``[volume, slice]`` pairs boxed in red.

    ``scores`` has shape ``(N volumes, Z slices)``; NaN (slices not scored) is drawn grey.
    """
    scores = np.asarray(scores, dtype=float)
    n_vol, n_sl = scores.shape
    fig = Figure(figsize=(min(12, 3 + 0.09 * n_vol), min(8, 2 + 0.08 * n_sl)))
    ax = fig.add_subplot(1, 1, 1)
    shown = np.ma.masked_invalid(scores.T)
    import matplotlib

    colormap = matplotlib.colormaps[cmap].with_extremes(bad="#dddddd")
    im = ax.imshow(shown, origin="lower", aspect="auto", cmap=colormap, vmin=vmin, vmax=vmax, interpolation="nearest")
    for volume, slice_ in pairs:
        ax.add_patch(Rectangle((volume - 0.5, slice_ - 0.5), 1, 1, fill=False, edgecolor=FLAG, linewidth=1.8))
    ax.set_xlabel("volume index (0-based)")
    ax.set_ylabel("slice index (0-based)")
    ax.set_title(title + (f" ({len(pairs)} flagged, red boxes)" if len(pairs) else ""), fontsize=11)
    fig.colorbar(im, ax=ax, label=colorbar_label, shrink=0.85)
    return to_png(fig)


def gradient_sphere(bvals: np.ndarray, bvecs: np.ndarray, *, title: str = "Gradient directions") -> bytes:
    """Diffusion directions on the unit sphere, coloured by shell; antipodes drawn hollow.

    ``bvals`` in s/mm² ``(N,)``, ``bvecs`` ``(N, 3)`` in voxel axes; b0 volumes are left out.
    """
    from lcid.dwi.gradients import shells

    bvals = np.asarray(bvals, dtype=float)
    bvecs = np.asarray(bvecs, dtype=float).reshape(-1, 3)
    fig = Figure(figsize=(5.6, 5))
    ax = fig.add_subplot(1, 1, 1, projection="3d")
    u, v = np.mgrid[0 : 2 * np.pi : 24j, 0 : np.pi : 12j]
    ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="#cccccc", linewidth=0.4)
    import matplotlib

    colors = matplotlib.colormaps["tab10"]
    dw_shells = [s for s in shells(bvals, bvecs) if s.bval > 50]
    for i, shell in enumerate(dw_shells):
        vecs = bvecs[list(shell.volumes)]
        norms = np.linalg.norm(vecs, axis=1)
        vecs = vecs[norms > 1e-6] / norms[norms > 1e-6, None]
        color = colors(i % 10)
        label = f"b={shell.bval:.0f} s/mm² ({shell.unique_directions} unique of {shell.count})"
        ax.scatter(*vecs.T, color=color, s=28, depthshade=False, label=label)
        ax.scatter(*(-vecs).T, facecolors="none", edgecolors=color, s=18, depthshade=False, alpha=0.6)
    ax.set_xlabel("x (voxel axis i)")
    ax.set_ylabel("y (voxel axis j)")
    ax.set_zlabel("z (voxel axis k)")
    ax.set_box_aspect((1, 1, 1))
    ax.set_title(title + "\nfilled: as acquired, hollow: the same direction reversed", fontsize=10)
    ax.tick_params(labelsize=7)
    if dw_shells:
        fig.legend(fontsize=8, loc="lower center", ncol=min(2, len(dw_shells)))
    return to_png(fig)


def sagittal_fov(
    b0: np.ndarray,
    mask: np.ndarray | None,
    *,
    pixel_mm: tuple[float, float] = (1.0, 1.0),
    cut_edges: Sequence[str] = (),
    title: str = "Mid-sagittal b0 with brain mask and field-of-view edges",
) -> bytes:
    """Mid-sagittal slice ``(A, S)`` (anterior-posterior by superior-inferior, RAS order).

    The brain mask is outlined in cyan and the superior and inferior edges of the field of
    view are drawn as dashed lines, red where the brain is cut (``cut_edges`` names
    ``"superior"``/``"inferior"``). ``pixel_mm`` is the (A, S) pixel size in mm.
    """
    b0 = np.nan_to_num(np.asarray(b0, dtype=float))
    n_a, n_s = b0.shape
    extent = (0, n_a * pixel_mm[0], 0, n_s * pixel_mm[1])
    fig = Figure(figsize=(5.2, 5.2 * min(2.0, max(0.5, extent[3] / max(extent[1], 1e-6)))))
    ax = fig.add_subplot(1, 1, 1)
    vmin, vmax = _window(b0, mask)
    ax.imshow(b0.T, cmap="gray", origin="lower", extent=extent, vmin=vmin, vmax=vmax)
    if mask is not None and np.any(mask) and not np.all(mask):
        a = (np.arange(n_a) + 0.5) * pixel_mm[0]
        s = (np.arange(n_s) + 0.5) * pixel_mm[1]
        ax.contour(a, s, np.asarray(mask, dtype=float).T, levels=[0.5], colors="cyan", linewidths=1.2)
    for edge, level in (("superior", extent[3]), ("inferior", 0.0)):
        cut = edge in cut_edges
        ax.axhline(level, color=FLAG if cut else EDGE, linestyle="--", linewidth=3 if cut else 1.5)
        ax.text(extent[1] * 0.02, level + (-0.04 if edge == "superior" else 0.015) * extent[3],
                f"{edge} FOV edge" + (" - brain cut here" if cut else ""),
                color=FLAG if cut else EDGE, fontsize=8, weight="bold")  # fmt: skip
    ax.set_xlabel("posterior → anterior (mm)")
    ax.set_ylabel("inferior → superior (mm)")
    ax.set_title(title + "\ncyan: brain mask", fontsize=10)
    return to_png(fig)


def overlay_slice(
    image: np.ndarray,
    region: np.ndarray,
    *,
    title: str,
    region_label: str,
    affine: np.ndarray | None = None,
) -> bytes:
    """One slice ``(X, Y)`` with a boolean region ``(X, Y)`` tinted red (e.g. where a ghost falls)."""
    image = display_plane(np.nan_to_num(image), affine)
    region = display_plane(np.asarray(region, dtype=float), affine)
    fig = Figure(figsize=(4.6, 4.6))
    ax = fig.add_subplot(1, 1, 1)
    _, vmax = _window(image)
    ax.imshow(image, cmap="gray", origin="lower", vmin=0, vmax=vmax * 0.3)  # bright window shows faint ghosts
    tint = np.zeros(region.shape + (4,))
    tint[region > 0.5] = (0.84, 0.15, 0.16, 0.35)
    ax.imshow(tint, origin="lower")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{title}\nred: {region_label} (window raised to show faint signal)", fontsize=10)
    return to_png(fig)


def score_bars(scores: Mapping[str, float], *, title: str, xlabel: str, reference: str, best_color: str = "#2ca02c") -> bytes:
    """Horizontal bars of named scores; ``reference`` (e.g. the table as given) grey, the best green."""
    names = sorted(scores, key=scores.__getitem__)
    values = [float(scores[n]) for n in names]
    best = names[-1] if names else None
    colors = ["#7f7f7f" if n == reference else best_color if n == best else OK for n in names]
    fig = Figure(figsize=(6, 0.28 * len(names) + 1.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.barh(range(len(names)), values, color=colors)
    ax.set_yticks(range(len(names)), labels=[f"{n} (as given)" if n == reference else n for n in names], fontsize=8)
    if values and min(values) > 0:  # zoom on the differences, which are what matters
        ax.set_xlim(left=0.9 * min(values), right=max(values) + 0.05 * (max(values) - 0.9 * min(values)))
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=11)
    ax.grid(axis="x", alpha=0.3)
    return to_png(fig)
