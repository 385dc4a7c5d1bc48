"""Physics-based quality statistics of one DWI slice picture.

The CNN of the DWI model misses what is faint or thin in a small grey picture: a ghost of a
few grey levels, one striped line across a crossing plane, a single dark slice, the comb of
interleaved motion (docs/vlm.md). Each of these has a textbook signature that a few lines of
arithmetic measure directly, on the picture's own pixels (no resizing, which would blur a
one-pixel line):

- **ghosting** (N/2 ghost): background signal that matches the picture shifted by half the
  field of view along a picture axis: the ideal observer's statistic for a known template of
  unknown amplitude in white noise, ``sum(background * template) / (sigma ||template||)``;
- **spikes**: a peak in the picture's 2D spectrum far from the centre (stripes in the slice
  itself), or one line whose second difference across lines stands out (the spiked slice in
  a crossing plane);
- **missing_slices**: one line much darker than its neighbours inside the object;
- **motion** (interleaved slice shifts): comb energy, the second difference across lines
  against that along them;
- **fov_cutoff**: object signal on a border row;
- **noise**: Immerkær's noise estimate and the background's spread against the object;
- **low_resolution**, **gibbs_ringing**: the share of power in frequency bands and ringing
  just inside the object's edge.

Rows are the picture's vertical axis: for coronal and sagittal pictures rendered by
:func:`lcid.vlm.render.render_slice` that is the superior-inferior (slice) axis.
No library computes these for a single 2D picture (MRIQC's image-quality metrics need the
whole volume and a brain mask), hence the hand-written measurements here.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: Fewest pixels on a side for the statistics to mean anything (smaller pictures give zeros).
MIN_SIDE = 8

_LINE_STATISTICS = ("darkest_line", "brightest_line", "line_roughness_peak", "line_roughness_local",
                    "comb_ratio", "line_step", "line_ratio_median", "comb_energy")
_SPECTRUM_BANDS = ((0.0, 0.05), (0.05, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.8))

#: Names of the values :func:`slice_statistics` returns, in order.
STATISTICS: tuple[str, ...] = (
    "noise_immerkaer", "background_spread", "background_level", "object_fraction",
    *(f"ghost_{name}_{axis}" for axis in ("rows", "columns") for name in ("contrast", "level", "correlation")),
    "ghost_matched_rows", "ghost_matched_columns", "ghost_matched_max", "ghost_matched_min",
    "border_top", "border_bottom", "border_left", "border_right", "border_top_two",
    "border_top_width", "border_bottom_width",
    "edge_signal_top", "edge_signal_second", "edge_signal_bottom", "edge_signal_left", "edge_signal_right",
    "object_top_position", "object_top_signal",
    *(f"{name}_rows" for name in _LINE_STATISTICS), *(f"{name}_columns" for name in _LINE_STATISTICS),
    "spectrum_peak", "spectrum_peak_off_axis",
    *(f"spectrum_band_{lo:.2f}_{hi:.2f}" for lo, hi in _SPECTRUM_BANDS),
    *(f"{name}_{axis}" for axis in ("rows", "columns") for name in ("spectrum_upper_half", "spectrum_top_half", "spectrum_nyquist")),
    "edge_ringing",
)


def display_scaled(picture: np.ndarray) -> np.ndarray:
    """The picture's 0.5th-99.5th percentile mapped to [0, 1], clipped (as the model's input is)."""
    picture = np.asarray(picture, dtype=np.float32)
    lo, hi = np.percentile(picture, [0.5, 99.5])
    if hi <= lo:
        return np.zeros_like(picture)
    return np.clip((picture - lo) / (hi - lo), 0.0, 1.0)


def object_mask(image: np.ndarray) -> np.ndarray:
    """The largest connected bright region (3x3 mean above 15 % of the 99th percentile), holes filled."""
    mask = ndi.binary_fill_holes(ndi.uniform_filter(image, 3) > 0.15 * np.percentile(image, 99))
    labels, count = ndi.label(mask)
    if count > 1:
        sizes = ndi.sum(mask, labels, range(1, count + 1))
        mask = labels == 1 + int(np.argmax(sizes))
    return mask


def slice_statistics(picture: np.ndarray) -> np.ndarray:
    """The :data:`STATISTICS` of a 2D picture (any intensity range), as float32.

    Values that are undefined for the picture (no background, an empty object) are 0.

    >>> rng = np.random.default_rng(0)
    >>> slice_statistics(rng.random((40, 64))).shape == (len(STATISTICS),)
    True
    """
    picture = np.asarray(picture, dtype=np.float32)
    if picture.ndim != 2 or min(picture.shape) < MIN_SIDE:
        return np.zeros(len(STATISTICS), dtype=np.float32)
    image = display_scaled(picture)
    mask = object_mask(image)
    if mask.sum() < 4:
        return np.zeros(len(STATISTICS), dtype=np.float32)
    background = ~ndi.binary_dilation(mask, iterations=2)
    level = float(image[mask].mean())
    laplacian = np.abs(ndi.convolve(image, np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)))
    values = [
        *_noise(image, mask, background, laplacian, level),
        *_ghost(image, mask, background, level),
        *_borders(image, mask),
        *_lines(image, mask), *_lines(image.T, mask.T),
        *_spectrum(image),
        _edge_ringing(mask, laplacian, level),
    ]
    return np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)


def _noise(image: np.ndarray, mask: np.ndarray, background: np.ndarray, laplacian: np.ndarray,
           level: float) -> list[float]:
    """Immerkær's noise sigma inside the object, background spread and level, all relative to the
    object's mean; the object's share of the picture."""
    inner = ndi.binary_erosion(mask, iterations=1)
    sigma = np.sqrt(np.pi / 2) / 6 * float(laplacian[inner].mean()) if inner.sum() > 20 else 0.0
    values = image[background] if background.sum() > 10 else np.zeros(10, dtype=np.float32)
    return [sigma / level, float(values.std()) / level, float(values.mean()) / level, float(mask.mean())]


def _ghost(image: np.ndarray, mask: np.ndarray, background: np.ndarray, level: float) -> list[float]:
    """Background signal where the object lands when shifted by half the picture along each axis."""
    out: list[float] = []
    for axis in (0, 1):
        half = image.shape[axis] // 2
        ghost = np.roll(mask, half, axis=axis) & background
        other = background & ~ghost
        if ghost.sum() > 5 and other.sum() > 5:
            difference = float(image[ghost].mean() - image[other].mean())
            shifted = np.roll(image, half, axis=axis)[background]
            correlation = float(np.corrcoef(image[background], shifted)[0, 1]) if image[background].std() > 0 else 0.0
            out += [difference / (float(image[other].std()) + 1e-3), difference / level, correlation]
        else:
            out += [0.0, 0.0, 0.0]
    values = image[background]
    if values.size < 10:
        return out + [0.0] * 4
    centre = float(np.median(values))
    sigma = 1.4826 * float(np.median(np.abs(values - centre))) + 1e-3  # robust: ghosts are outliers
    matched = []
    for axis in (0, 1):
        template = np.roll(image, image.shape[axis] // 2, axis=axis)[background]
        template = template - template.mean()
        matched.append(float(((values - centre) * template).sum() / (sigma * np.sqrt((template**2).sum()) + 1e-6)))
    return out + [*matched, max(matched), min(matched)]


def _borders(image: np.ndarray, mask: np.ndarray) -> list[float]:
    """Object on the border rows and columns, and how bright it is there (a cut head has brain on
    the border, an intact one scalp or air); where the object starts from the top."""
    width = float(mask.sum(axis=1).max()) + 1e-3
    reference = float(np.percentile(image[mask], 75)) + 1e-3
    out = [float(mask[0].mean()), float(mask[-1].mean()), float(mask[:, 0].mean()), float(mask[:, -1].mean()),
           float(mask[:2].mean()), float(mask[0].sum()) / width, float(mask[-1].sum()) / width]
    for line in (image[0], image[1], image[-1], image[:, 0], image[:, -1]):
        out.append(float(np.sort(line)[-max(3, len(line) // 8):].mean()) / reference)
    profile = np.array([image[r][mask[r]].mean() if mask[r].sum() > 2 else 0.0 for r in range(image.shape[0])])
    top = int(np.argmax(mask.sum(axis=1) > 0.2 * width))
    inside = profile[profile > 0]
    out += [top / image.shape[0], float(profile[top]) / (float(np.median(inside)) + 1e-3) if inside.size else 0.0]
    return out


def _lines(image: np.ndarray, mask: np.ndarray) -> list[float]:
    """Per line (row) inside the object: mean against the lines two away (dark or bright line);
    second difference across lines (a spiked line: its peak over the median and over the lines
    two away; the comb of interleaved motion: its mean against that along the lines)."""
    n = image.shape[0]
    row_sums = mask.sum(axis=1)
    rows = np.flatnonzero(row_sums > 0.2 * row_sums.max())[2:-2]  # not the object's first and last lines,
    inner = rows[(rows > 1) & (rows < n - 2)]  # which the mask's 3x3 smoothing pads with background
    if len(inner) < 3:
        return [0.0] * len(_LINE_STATISTICS)
    means = np.array([image[r][mask[r]].mean() if mask[r].any() else 0.0 for r in range(n)])
    ratio = means[inner] / (0.5 * (means[inner - 2] + means[inner + 2]) + 1e-3)
    across = np.abs(image[1:-1] - 0.5 * (image[:-2] + image[2:]))
    per_line = (across * mask[1:-1]).sum(axis=1) / np.maximum(mask[1:-1].sum(axis=1), 1)  # line r at r - 1
    roughness = per_line[inner - 1]
    padded = np.pad(per_line, 3, mode="edge")  # line r at r + 2
    local = roughness / (0.5 * (padded[inner] + padded[inner + 4]) + 1e-3)  # against the lines two away
    typical = float(np.median(roughness)) + 1e-4
    along = np.abs(image[:, 1:-1] - 0.5 * (image[:, :-2] + image[:, 2:]))
    along_energy = float((along * mask[:, 1:-1]).sum()) / max(float(mask[:, 1:-1].sum()), 1.0)
    comb = float(roughness.mean())
    return [float(ratio.min()), float(ratio.max()), float(roughness.max()) / typical,
            float(local.max()), comb / (along_energy + 1e-4),
            float(np.abs(np.diff(means[inner])).max()) / (float(means[inner].mean()) + 1e-3),
            float(np.median(ratio)), comb]


def _spectrum(image: np.ndarray) -> list[float]:
    """Peak of the log spectrum away from the centre over its median (stripes), the share of
    power in radial bands, and per axis the share in the upper frequencies of 1D spectra."""
    h, w = image.shape
    magnitude = np.abs(np.fft.fftshift(np.fft.fft2(image - image.mean())))
    yy, xx = np.mgrid[:h, :w]
    radius = np.hypot((yy - h // 2) / h, (xx - w // 2) / w)
    log = np.log(magnitude + 1e-3)
    outer = radius > 0.12
    off_axis = outer & (np.abs(yy - h // 2) > 1) & (np.abs(xx - w // 2) > 1)
    out = [float(log[outer].max() - np.median(log[outer])), float(log[off_axis].max() - np.median(log[off_axis]))]
    power = magnitude**2
    total = float(power.sum()) + 1e-6
    out += [float(np.log(power[(radius >= lo) & (radius < hi)].sum() / total + 1e-9)) for lo, hi in _SPECTRUM_BANDS]
    for axis in (0, 1):
        spectrum = (np.abs(np.fft.rfft(image, axis=axis)) ** 2).mean(axis=1 - axis)
        spectrum = spectrum / (spectrum.sum() + 1e-12)
        n = len(spectrum)
        out += [float(np.log(spectrum[int(0.25 * n):int(0.5 * n)].sum() + 1e-9)),
                float(np.log(spectrum[int(0.5 * n):].sum() + 1e-9)), float(np.log(spectrum[-2:].sum() + 1e-9))]
    return out


def _edge_ringing(mask: np.ndarray, laplacian: np.ndarray, level: float) -> float:
    """Mean Laplacian magnitude in a band 1-4 pixels inside the object's edge (Gibbs rings sit there)."""
    band = mask & ~ndi.binary_erosion(mask, iterations=4) & ndi.binary_erosion(mask, iterations=1)
    return float(laplacian[band].mean()) / level if band.any() else 0.0
