"""A synthetic brain-like diffusion series with known anatomy, made in a second or two.

The head is built from analytic shapes on a RAS grid (1 = right, 2 = anterior, 3 = superior,
normalised to [-1, 1] over the field of view): a scalp/skull shell, a brain ellipsoid with a
cortical grey-matter ribbon, two CSF ventricles, and white-matter bundles of known
orientation (a corpus-callosum-like left-right band, a left and right corticospinal
superior-inferior tract, and two crossing regions where they meet). Each tissue class gets one
signal curve from DIPY's multi-compartment tensor model (``dipy.sims.voxel.multi_tensor``),
computed once per class and broadcast to its voxels, times a class b0 intensity; Rician
noise is added last.

Diffusivities (mm²/s) follow common literature values: white matter λ∥ 1.7e-3, λ⊥ 0.3e-3
(FA ≈ 0.8 in a coherent bundle), grey matter isotropic 0.8e-3, CSF free water 3.0e-3
at body temperature; b0 intensities follow T2 contrast (CSF brightest, white matter darkest
in the brain, the scalp fat bright on b0 but dark after diffusion weighting, bone dark).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lcid.io.scan import DWIScan

#: Tissue labels of the phantom.
LABELS = {"background": 0, "skull": 1, "scalp": 2, "grey_matter": 3, "white_matter": 4,
          "csf": 5, "corpus_callosum": 6, "corticospinal": 7, "crossing": 8}

#: b0 intensity of each label (arbitrary units; white matter 600).
_S0 = {0: 0.0, 1: 40.0, 2: 700.0, 3: 800.0, 4: 600.0, 5: 1400.0, 6: 600.0, 7: 600.0, 8: 600.0}

_WM = (1.7e-3, 0.3e-3, 0.3e-3)  # coherent bundle
_WM_LOOSE = (1.2e-3, 0.55e-3, 0.55e-3)  # non-bundle white matter, lower anisotropy (FA ~ 0.45)
_GM = (0.8e-3, 0.8e-3, 0.8e-3)
_CSF = (3.0e-3, 3.0e-3, 3.0e-3)
#: Scalp: bright on b0, but little diffusion-weighted signal left (fat suppression and fast
#: apparent decay), modelled as a fast isotropic compartment.
_SCALP = (2.5e-3, 2.5e-3, 2.5e-3)


def default_scheme() -> tuple[np.ndarray, np.ndarray]:
    """2 b0s, 32 directions at b = 1000 and 32 at b = 2000 s/mm² (interleaved half-sphere sets).

    Returns
    -------
    bvals : (66,) s/mm²
    bvecs : (66, 3) unit vectors, zero rows for b0
    """
    first = hemisphere_directions(32)
    second = hemisphere_directions(32, offset=0.5)
    bvecs = np.concatenate([np.zeros((2, 3)), first, second])
    bvals = np.concatenate([np.zeros(2), np.full(32, 1000.0), np.full(32, 2000.0)])
    return bvals, bvecs


def hemisphere_directions(n: int, *, offset: float = 0.0) -> np.ndarray:
    """``n`` near-uniform unit vectors on the upper half-sphere (golden-angle spiral), ``(n, 3)``.

    A half-sphere spiral has no antipodal near-duplicates, so all ``n`` count as unique
    directions. ``offset`` (0-1) rotates the spiral so two shells interleave.
    """
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - i / n)
    theta = np.pi * (1 + 5**0.5) * i + 2 * np.pi * offset / n * 7
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)


@dataclass(frozen=True)
class Anatomy:
    """Sizes and positions of the phantom's shapes, in normalised field-of-view units ([-1, 1] per axis).

    The defaults are the standard phantom (what :func:`make_phantom` draws without ``anatomy``);
    :meth:`random` draws a varied head for generative-model training data.

    Attributes
    ----------
    head_radii, skull_radii, brain_radii
        Semi-axes ``(x, y, z)`` of the scalp's outer surface, the skull's outer surface and the brain.
    head_z, brain_z
        Superior offset of the head/skull centre and of the brain centre.
    white_matter_level
        Ellipsoid level inside which the brain is white matter (the cortical ribbon lies outside it).
    cst_x, cst_y, cst_radii
        Corticospinal tracts: left-right distance from the midline, anterior offset, cylinder semi-axes ``(x, y)``.
    cc_half_length, cc_z, cc_half_thickness
        Corpus callosum: anterior-posterior half extent, height, half thickness.
    ventricle_x, ventricle_z, ventricle_radii
        Lateral ventricles: distance from the midline, height, semi-axes ``(x, y, z)``.
    """

    head_radii: tuple[float, float, float] = (0.86, 0.9, 0.86)
    skull_radii: tuple[float, float, float] = (0.79, 0.83, 0.78)
    brain_radii: tuple[float, float, float] = (0.7, 0.76, 0.68)
    head_z: float = -0.05
    brain_z: float = 0.0
    white_matter_level: float = 0.72
    cst_x: float = 0.3
    cst_y: float = -0.05
    cst_radii: tuple[float, float] = (0.1, 0.12)
    cc_half_length: float = 0.35
    cc_z: float = 0.22
    cc_half_thickness: float = 0.08
    ventricle_x: float = 0.12
    ventricle_z: float = 0.04
    ventricle_radii: tuple[float, float, float] = (0.07, 0.3, 0.1)

    @classmethod
    def random(cls, rng: np.random.Generator) -> Anatomy:
        """A varied head: overall size 0.85-1.05, aspect ±8 % per axis, skull 0.04-0.1 thick,
        scalp 0.05-0.1 thick, ventricles 0.7-2x (as with atrophy), bundles and callosum moved a little.

        ``rng`` is the only source of randomness (record its seed to reproduce the head).
        """
        base = cls()
        size = rng.uniform(0.85, 1.05)
        brain = tuple(float(r * size * rng.uniform(0.92, 1.08)) for r in base.brain_radii)
        skull_gap = rng.uniform(0.04, 0.1)
        scalp_gap = rng.uniform(0.05, 0.1)
        skull = tuple(float(r + skull_gap) for r in brain)
        head = tuple(float(r + scalp_gap) for r in skull)
        ventricles = float(rng.uniform(0.7, 2.0))
        v = base.ventricle_radii
        return cls(
            head_radii=head,  # type: ignore[arg-type]
            skull_radii=skull,  # type: ignore[arg-type]
            brain_radii=brain,  # type: ignore[arg-type]
            head_z=float(rng.uniform(-0.08, -0.02)),
            brain_z=float(rng.uniform(-0.03, 0.03)),
            white_matter_level=float(rng.uniform(0.6, 0.78)),
            cst_x=float(size * rng.uniform(0.25, 0.35)),
            cst_y=float(rng.uniform(-0.1, 0.0)),
            cc_half_length=float(size * rng.uniform(0.3, 0.4)),
            cc_z=float(0.22 * size + 0.5 * (ventricles - 1) * v[2]),
            ventricle_x=float(0.12 * size * np.sqrt(ventricles)),
            ventricle_radii=(float(v[0] * ventricles), float(v[1] * size * np.sqrt(ventricles)), float(v[2] * ventricles)),
        )


def phantom_labels(shape: Sequence[int], *, anatomy: Anatomy | None = None) -> np.ndarray:
    """Tissue label map of the head, ``shape`` ``(X, Y, Z)`` in RAS voxel order -> int8 array.

    Labels are :data:`LABELS`; shapes scale with the field of view. ``anatomy`` sets the
    shapes' sizes and positions (default: the standard phantom).
    """
    a = anatomy if anatomy is not None else Anatomy()
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, int(s)) for s in shape], indexing="ij")
    # Head: scalp outer surface, skull below it, brain inside; brain slightly superior.
    def ellipsoid(cx: float, cy: float, cz: float, rx: float, ry: float, rz: float) -> np.ndarray:
        return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + ((z - cz) / rz) ** 2

    head = ellipsoid(0, 0, a.head_z, *a.head_radii)
    brain = ellipsoid(0, 0.0, a.brain_z, *a.brain_radii)
    wm = brain < a.white_matter_level  # cortical ribbon outside ~85% of the radius
    labels = np.zeros(x.shape, np.int8)
    labels[head < 1.0] = LABELS["scalp"]
    labels[ellipsoid(0, 0, a.head_z, *a.skull_radii) < 1.0] = LABELS["skull"]
    labels[brain < 1.0] = LABELS["grey_matter"]
    labels[wm] = LABELS["white_matter"]
    # Corticospinal tracts: two superior-inferior cylinders left and right.
    cst = ((np.abs(x) - a.cst_x) / a.cst_radii[0]) ** 2 + ((y - a.cst_y) / a.cst_radii[1]) ** 2 < 1.0
    labels[wm & cst] = LABELS["corticospinal"]
    # Corpus callosum: a left-right band above the ventricles.
    cc = (np.abs(y) < a.cc_half_length) & (np.abs(z - a.cc_z) < a.cc_half_thickness)
    labels[wm & cc] = LABELS["corpus_callosum"]
    labels[wm & cc & cst] = LABELS["crossing"]
    # Lateral ventricles: two small ellipsoids beside the midline, below the callosum.
    for side in (-1, 1):
        labels[ellipsoid(side * a.ventricle_x, 0.0, a.ventricle_z, *a.ventricle_radii) < 1.0] = LABELS["csf"]
    return labels


def make_phantom(
    *,
    shape: Sequence[int] = (64, 64, 40),
    voxel_mm: float = 2.0,
    bvals: np.ndarray | None = None,
    bvecs: np.ndarray | None = None,
    snr: float = 30.0,
    seed: int = 0,
    anatomy: Anatomy | None = None,
) -> DWIScan:
    """A synthetic brain-like DWI series.

    Parameters
    ----------
    shape
        ``(X, Y, Z)`` voxels in RAS order.
    voxel_mm
        Isotropic voxel edge (mm).
    bvals, bvecs
        Gradient scheme, s/mm² ``(N,)`` and unit vectors ``(N, 3)`` in voxel (= RAS) axes;
        default :func:`default_scheme` (2 b0 + 32 at b=1000 + 32 at b=2000).
    snr
        Mean b0 signal inside the brain over the noise standard deviation of each channel
        (Rician noise: magnitude of complex Gaussian); ``inf`` or ``0`` for no noise.
    seed
        Seed of the noise; the anatomy is deterministic.
    anatomy
        Shape sizes and positions (:class:`Anatomy`, e.g. ``Anatomy.random(rng)``); default the
        standard phantom.

    Returns
    -------
    DWIScan
        float32 ``(X, Y, Z, N)``; RAS affine with the world origin at the grid centre; a
        sidecar with ``PhaseEncodingDirection`` ``j-``, ``TotalReadoutTime`` (s),
        ``SliceTiming`` (s, interleaved) and ``RepetitionTime``.
    """
    from dipy.core.gradients import gradient_table
    from dipy.sims.voxel import multi_tensor

    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 4:
        raise ValueError(f"phantom shape must be 3 sizes >= 4, got {shape}")
    if bvals is None or bvecs is None:
        bvals, bvecs = default_scheme()
    bvals = np.asarray(bvals, dtype=float)
    bvecs = np.asarray(bvecs, dtype=float).reshape(-1, 3)
    labels = phantom_labels(shape, anatomy=anatomy)
    # DIPY's gradient table needs unit vectors on DW rows; b0 rows may be zero.
    gtab = gradient_table(bvals, bvecs=_unit_rows(bvecs), b0_threshold=50)

    def signal(mevals: Sequence[Sequence[float]], angles: Sequence[tuple[float, float]],
               fractions: Sequence[float]) -> np.ndarray:
        s, _ = multi_tensor(gtab, np.asarray(mevals), S0=1.0, angles=angles, fractions=fractions, snr=None)
        return s

    # (theta, phi) in degrees: theta from +z (superior), phi from +x (right) towards +y.
    lr, ap, si = (90, 0), (90, 90), (0, 0)
    curves = {
        LABELS["background"]: np.zeros(len(bvals)),
        LABELS["skull"]: signal([_GM], [si], [100]),
        LABELS["scalp"]: signal([_SCALP], [si], [100]),
        LABELS["grey_matter"]: signal([_GM], [si], [100]),
        LABELS["white_matter"]: signal([_WM_LOOSE], [ap], [100]),
        LABELS["csf"]: signal([_CSF], [si], [100]),
        LABELS["corpus_callosum"]: signal([_WM], [lr], [100]),
        LABELS["corticospinal"]: signal([_WM], [si], [100]),
        LABELS["crossing"]: signal([_WM, _WM], [lr, si], [50, 50]),
    }
    table = np.stack([curves[k] * _S0[k] for k in range(len(LABELS))]).astype(np.float32)  # (labels, N)
    clean = table[labels]  # (X, Y, Z, N), one lookup instead of a per-voxel model
    data = clean
    if snr and np.isfinite(snr):
        brain = labels >= LABELS["grey_matter"]
        b0 = clean[..., bvals <= 50].mean(-1) if np.any(bvals <= 50) else clean[..., 0]
        sigma = float(b0[brain].mean()) / float(snr)
        rng = np.random.default_rng(seed)
        real = clean + rng.standard_normal(clean.shape, dtype=np.float32) * np.float32(sigma)
        imag = rng.standard_normal(clean.shape, dtype=np.float32) * np.float32(sigma)
        data = np.sqrt(real * real + imag * imag)
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = -(np.array(shape) - 1) / 2.0 * voxel_mm
    return DWIScan(
        data=np.ascontiguousarray(data, dtype=np.float32),
        affine=affine,
        bvals=bvals,
        bvecs=bvecs,
        sidecar=_sidecar(shape),
        path="phantom",
    )


def _unit_rows(bvecs: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(bvecs, axis=1, keepdims=True)
    return np.where(norms > 1e-6, bvecs / np.maximum(norms, 1e-6), 0.0)


def _sidecar(shape: tuple[int, int, int]) -> dict:
    """EPI timing of the phantom: 0.7 ms echo spacing, TR 3 s, interleaved slices (odd first)."""
    n_slices = shape[2]
    tr = 3.0
    order = list(range(0, n_slices, 2)) + list(range(1, n_slices, 2))
    timing = [0.0] * n_slices
    for position, index in enumerate(order):
        timing[index] = round(position * tr / n_slices, 4)
    return {
        "Manufacturer": "lcid synthetic phantom",
        "PhaseEncodingDirection": "j-",
        "TotalReadoutTime": round(0.0007 * (shape[1] - 1), 6),
        "EffectiveEchoSpacing": 0.0007,
        "RepetitionTime": tr,
        "EchoTime": 0.08,
        "SliceTiming": timing,
        "MultibandAccelerationFactor": 1,
    }
