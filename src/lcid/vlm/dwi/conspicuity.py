"""Does an injected artifact stand out from the image noise in one rendered picture?

The builder knows each artifact's exact contribution ``delta`` to the series (the series after
minus before its injection). For a picture it measures, in the native pixels of that slice and
in display units (the picture's window mapped to 0..1, clipped as the screen clips it):

* ``D = clip(I) - clip(I - delta)``: what the artifact changes on screen, where ``I`` is the
  final corrupted slice;
* ``sigma``: the picture's own noise (:func:`noise_sigma`, unclipped display units);
* the reader's detectability ``d' = sqrt(eta) ||D||_2 / sigma``.

``||D||_2 / sigma`` is the signal-to-noise ratio of the ideal observer that knows where and
what the artifact is, in white noise (Barrett & Myers, *Foundations of Image Science*, 2004,
ch. 13). For a uniform patch of contrast ``C`` over ``A`` pixels it is Rose's
``k = C sqrt(A) / sigma`` (Rose 1948, J. Opt. Soc. Am. 38:196). Human observers reach about
half the ideal observer's statistical efficiency for such tasks (``eta`` = 0.5, Burgess,
Wagner, Jennings & Barlow 1981, Science 214:93), hence the factor ``sqrt(eta)``; and a reader
needs ``d'`` of about 5 to see a mark reliably, Rose's criterion, the usual imaging-physics
rule of conspicuity (Burgess 1999, "The Rose model, revisited", J. Opt. Soc. Am. A 16:633;
Bushberg et al., *The Essential Physics of Medical Imaging*). :data:`ROSE_K` = 5 is therefore
the threshold: below it a reader cannot tell the artifact from the picture's noise, so
labelling it "visible" would teach a model noise. Both numbers come from that perception
literature and were fixed before any model was trained on these labels; neither is tuned on
any score.

The mark ``delta`` is made by the builder on the denoised series
(:func:`lcid.vlm.dwi.build.artifact_mark`), so that the artifact's action on the noise itself
(a ghost of the noise, noise removed by truncation), which looks like noise, does not count.

What this leaves out, on purpose: the anatomy's own structure hides artifacts further
("anatomical noise"), and human observers integrate less than the ideal one over very large
areas, so ``d' >= 5`` is a necessary, lenient condition, never a proof of visibility.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lcid.vlm.render import extract_plane

#: Rose's criterion: detectability a reader needs to see a mark against the picture's noise.
ROSE_K = 5.0
#: Statistical efficiency of a human observer relative to the ideal one (Burgess et al. 1981).
HUMAN_EFFICIENCY = 0.5
#: Problems whose label also needs their mark to pass :data:`ROSE_K` in the picture (their
#: injection keeps the series' grid, so after-minus-before is defined pixel by pixel).
CONSPICUITY_PROBLEMS: tuple[str, ...] = ("ghosting", "spikes", "gibbs_ringing")
#: Fewest object pixels to estimate the noise on (else all pixels of the slice are used).
_MIN_PIXELS = 50
#: Immerkaer's 3x3 kernel: the difference of two Laplacians, blind to planes and ramps.
_KERNEL = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])


def noise_sigma(image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Standard deviation of the white noise in a 2D ``image``.

    Immerkaer's operator (Immerkaer 1996, "Fast noise variance estimation", Comput. Vis. Image
    Underst. 64:300) removes smooth structure; white noise passes with gain 6 (the kernel's
    L2 norm). The spread is taken as the median absolute deviation (x 1.4826), so that edges,
    rings and stripes (few, large values) barely move it. ``mask`` (bool, same shape) restricts
    the estimate to the object when it holds at least 50 pixels.

    >>> rng = np.random.default_rng(0)
    >>> round(noise_sigma(rng.normal(0, 0.1, (128, 128)) + np.linspace(0, 1, 128)), 2)
    0.1
    """
    # Written here rather than skimage.restoration.estimate_sigma (wavelet MAD over the whole
    # picture): the estimate must be restricted to the object, since the clipped, near-zero
    # background of a rendered DWI slice carries almost no noise; estimate_sigma takes no mask.
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or min(image.shape) < 3:
        raise ValueError(f"noise_sigma needs a 2D image of at least 3x3 pixels, not {image.shape}")
    response = ndimage.convolve(image, _KERNEL, mode="reflect")[1:-1, 1:-1]
    if mask is not None and int(mask[1:-1, 1:-1].sum()) >= _MIN_PIXELS:
        response = response[np.asarray(mask, bool)[1:-1, 1:-1]]
    values = response.ravel()
    mad = float(np.median(np.abs(values - np.median(values))))
    return 1.4826 * mad / 6.0


def detectability(
    final: np.ndarray, delta: np.ndarray, *, limits: tuple[float, float], mask: np.ndarray | None = None
) -> float:
    """Reader's ``d'`` of the artifact ``delta`` in the displayed slice ``final`` (module docstring).

    Parameters
    ----------
    final
        The corrupted slice as acquired, 2D (scanner units).
    delta
        The artifact's part of ``final`` (after minus before its injection), same shape.
    limits
        The display window (low, high) the picture is rendered with.
    mask
        Object pixels to measure the noise on (optional).
    """
    lo, hi = limits
    width = max(hi - lo, 1e-12)
    shown = (np.asarray(final, np.float64) - lo) / width
    without = shown - np.asarray(delta, np.float64) / width
    diff = np.clip(shown, 0.0, 1.0) - np.clip(without, 0.0, 1.0)
    sigma = noise_sigma(shown, mask)
    energy = float(np.sqrt(HUMAN_EFFICIENCY * np.sum(diff**2)))
    if sigma <= 0.0:  # a noiseless picture shows every change
        return 1e9 if energy > 0 else 0.0
    return energy / sigma


def view_detectability(
    volume: np.ndarray,
    deltas: dict[str, np.ndarray],
    affine: np.ndarray,
    *,
    plane: str,
    index: int,
    limits: tuple[float, float],
    mask: np.ndarray | None = None,
) -> dict[str, float]:
    """:func:`detectability` of each problem's ``delta`` volume in one rendered view.

    ``volume``, each ``delta`` and ``mask`` are 3D ``(X, Y, Z)`` on the same grid; the slice is
    taken as :func:`lcid.vlm.render.extract_plane` takes it, in native pixels (the repeated
    pixels of the physical aspect add no information and are left out).
    """
    final = extract_plane(volume, affine, plane=plane, index=index)
    inside = None if mask is None else extract_plane(mask.astype(np.float32), affine, plane=plane, index=index) > 0.5
    out = {}
    for problem, delta in deltas.items():
        d = extract_plane(delta, affine, plane=plane, index=index)
        out[problem] = round(detectability(final, d, limits=limits, mask=inside), 3)
    return out
