"""One alignment pass of every volume of a series to a common reference.

Each volume ``v`` is modelled, in the voxel-axis millimetre frame of the image centred
on the object's centroid, as a rigid head motion followed by an affine distortion along
the phase-encoding (PE) axis only (the first-order eddy-current model of Jezzard et al.
1998 and Andersson & Sotiropoulos 2016):

    y = E_v (R_v x + t_v),   E_v = I + e_pe s_vᵀ

where ``x`` is a point of the volume's reference space, ``y`` the point of volume ``v``,
``R_v``/``t_v`` the rigid motion and ``s_v`` (dimensionless, 3 components) the PE
displacement per mm along each voxel axis (``s_v[pe]`` is the PE scaling, the other two
are shears). A PE shift is indistinguishable from a translation along PE and stays in
``t_v``; :mod:`lcid.dwi.problems.eddy_current` separates its gradient-dependent part.

Diffusion-weighted volumes have another contrast than the b0 (and low SNR at high b),
so they are aligned to a contrast-matched reference: first the mean of their own shell,
then, once aligned, each volume's own prediction from a diffusion tensor fitted to the
aligned shell (Andersson & Sotiropoulos 2016 register to model predictions for the same
reason); b0 volumes are aligned to the mean b0 with rigid motion only. Transforms are therefore relative to each group's reference: the
cross-contrast link between a shell mean and the b0 was not reliable to better than
about 1 mm on clean real series (DIPY mutual information and an edge-based fit disagreed
by that much), so it is not estimated and motion is compared within a contrast group.

Why a hand-written Gauss-Newton instead of DIPY for the per-volume step: DIPY registers
one volume at a time with a generic affine (12 parameters, not the 9-parameter rigid +
PE-affine model) and takes tens of seconds per volume; the Gauss-Newton below solves all
volumes of a group together on a two-level pyramid (numpy/scipy, ~3 mm working grid) in
a few seconds (``bench/check_speed.py`` measures both).

The result is computed once per scan and cached (keyed on the scan object), so the
``motion`` and ``eddy_current`` detectors share one pass.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from lcid.dwi.context import CheckContext
from lcid.io.scan import DWIScan

#: Working resolution of the finest pyramid level (mm): ~3 mm is enough for sub-voxel
#: accuracy on smooth EPI images and keeps the largest shared series at 64x64x41.
FINE_MM = 3.0
#: Smoothing (level voxels) per pyramid level: the coarse level widens the capture
#: range, the fine level keeps the detail that pins rotations down.
SIGMAS = (1.0, 0.0)
#: Gauss-Newton iterations per pyramid level (coarse, fine) and reference updates.
ITERATIONS = (10, 8)
REFERENCE_UPDATES = 2
#: Shells with fewer volumes than this share the reference of the nearest larger shell.
MIN_GROUP = 3
#: Volumes whose object contrast (see :func:`object_contrast`) is below this are noise
#: dominated (the object less than ~1.4x the background) and are not registered.
MIN_CONTRAST = 0.3
#: Most object points a Gauss-Newton step evaluates per volume.
MAX_POINTS = 8000
#: Prior standard deviations of the parameters per object point: translation (mm),
#: rotation (rad), PE affine (dimensionless), log intensity gain. The prior counts once per
#: point, like the data, so it is a ridge of fixed relative strength at every level: on
#: textured synthetic heads the data's rotation curvature is ~10x the prior's (a rotation
#: shrinks by ~8 %), but along a direction the image hardly determines (rotation about a
#: symmetry axis of a smooth object, where the cost is flat) it keeps the estimate near zero.
PRIOR_SD = np.array([50.0, 50.0, 50.0, 0.5, 0.5, 0.5, 2.0, 2.0, 2.0, 10.0])
#: Huber constant (in robust standard deviations of the residual).
HUBER_K = 1.345

_CACHE: weakref.WeakKeyDictionary[DWIScan, tuple[int, SeriesAlignment]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class SeriesAlignment:
    """Per-volume transforms from each volume's group reference to the volume.

    Attributes
    ----------
    rotations
        Rotation matrices ``R_v``, shape ``(N, 3, 3)``.
    translations_mm
        ``t_v`` in mm along the voxel axes, shape ``(N, 3)``.
    pe_affine
        ``s_v``: PE displacement (mm) per mm along each voxel axis, shape ``(N, 3)``;
        zero for b0 volumes.
    pe_axis
        Voxel axis of phase encoding used by the model.
    centre_mm
        Origin of the model's frame: object centroid in voxel-axis mm, shape ``(3,)``.
    voxel_size_mm
        Voxel edge lengths, shape ``(3,)``.
    points_mm
        Object points (centred mm) where displacements are evaluated, shape ``(M, 3)``.
    group
        Index of the contrast group (reference) of each volume, shape ``(N,)``; transforms
        of volumes in different groups are relative to different references.
    registered
        False for volumes with too little object contrast to register (identity kept), ``(N,)``.
    """

    rotations: np.ndarray
    translations_mm: np.ndarray
    pe_affine: np.ndarray
    pe_axis: int
    centre_mm: np.ndarray
    voxel_size_mm: np.ndarray
    points_mm: np.ndarray
    group: np.ndarray
    registered: np.ndarray

    @property
    def rotation_vectors_rad(self) -> np.ndarray:
        """Rotation vectors (axis × angle, radians), shape ``(N, 3)``."""
        return Rotation.from_matrix(self.rotations).as_rotvec()

    @property
    def n_volumes(self) -> int:
        return int(self.rotations.shape[0])


def align_series(scan: DWIScan, context: CheckContext) -> SeriesAlignment:
    """The cached alignment of ``scan`` (computed on first use).

    Parameters
    ----------
    scan
        The series, data ``(X, Y, Z, N)``.
    context
        Its check context (b0 reference, mask, shells, PE axis; axis 1 when unknown).
    """
    pe_axis = 1 if context.pe_axis is None else int(context.pe_axis)
    cached = _CACHE.get(scan)
    if cached is not None and cached[0] == pe_axis:
        return cached[1]
    result = estimate_alignment(
        scan.data,
        voxel_size_mm=np.asarray(scan.voxel_size_mm, float),
        b0=context.b0,
        mask=context.mask,
        groups=volume_groups(context),
        b0_volumes=context.b0_volumes,
        bvals=scan.bvals,
        bvecs=scan.bvecs,
        pe_axis=pe_axis,
    )
    _CACHE[scan] = (pe_axis, result)
    return result


def volume_groups(context: CheckContext) -> list[tuple[int, ...]]:
    """Volumes sharing a reference: the b0s first, then one group per shell.

    A shell with fewer than :data:`MIN_GROUP` volumes joins the group of the nearest
    b-value that has enough (the b0 group counts), so every reference is a mean of several.
    """
    shells = sorted(context.shells, key=lambda s: s.bval)
    b0 = set(context.b0_volumes)
    entries = [(0.0, tuple(sorted(b0)))] if b0 else []
    entries += [(s.bval, tuple(v for v in s.volumes if v not in b0)) for s in shells if s.bval > 0]
    entries = [e for e in entries if e[1]]
    big = [i for i, (_, vols) in enumerate(entries) if len(vols) >= MIN_GROUP or (i == 0 and b0)]
    if not big:
        return [tuple(sorted(v for _, vols in entries for v in vols))]
    merged: dict[int, list[int]] = {i: list(entries[i][1]) for i in big}
    for i, (bval, vols) in enumerate(entries):
        if i not in merged:
            target = min(big, key=lambda j: abs(entries[j][0] - bval))
            merged[target].extend(vols)
    return [tuple(sorted(merged[i])) for i in sorted(merged)]


def estimate_alignment(
    data: np.ndarray,
    *,
    voxel_size_mm: np.ndarray,
    b0: np.ndarray,
    mask: np.ndarray,
    groups: list[tuple[int, ...]],
    b0_volumes: tuple[int, ...],
    bvals: np.ndarray,
    bvecs: np.ndarray,
    pe_axis: int,
) -> SeriesAlignment:
    """Align every volume of ``data`` ``(X, Y, Z, N)`` to its group's reference (see module doc).

    Parameters
    ----------
    voxel_size_mm
        ``(3,)`` voxel edges.
    b0
        Reference b0 image ``(X, Y, Z)``; b0 volumes are aligned to it directly.
    mask
        Object mask ``(X, Y, Z)``: registration uses the (dilated) object only.
    groups
        Volume index groups that share a contrast-matched reference.
    b0_volumes
        Volumes that are b0 (rigid only, no PE affine).
    bvals, bvecs
        ``(N,)`` s/mm² and ``(N, 3)`` unit gradients, for the tensor-predicted references.
    pe_axis
        Voxel axis of phase encoding.
    """
    n = data.shape[3]
    vox = np.asarray(voxel_size_mm, float)
    if not mask.any():
        mask = np.ones(mask.shape, bool)
    centre = np.array(ndimage.center_of_mass(mask)) * vox
    # Everything is computed on a base grid of about FINE_MM; the coarse level halves it.
    base = _Grid.of(vox, mask.shape, max(1, int(round(FINE_MM / float(np.min(vox))))), -centre)
    base_mask = _block_mean(mask.astype(np.float32)[..., None], base.factor)[..., 0]
    levels = [_Level.build(base, 2, base_mask, sigma=SIGMAS[0]), _Level.build(base, 1, base_mask, sigma=SIGMAS[1])]
    b0_base = _block_mean(b0[..., None], base.factor)[..., 0]
    b0_base /= _robust_scale(b0_base[..., None], base_mask > 0.5)[0]

    rot = np.tile(np.eye(3), (n, 1, 1))
    trans = np.zeros((n, 3))
    pe_aff = np.zeros((n, 3))
    is_b0 = np.zeros(n, bool)
    is_b0[list(b0_volumes)] = True
    group_of = np.zeros(n, int)
    registrable = object_contrast(data, mask) >= MIN_CONTRAST

    for g, group in enumerate(groups):
        group_of[list(group)] = g
        idx = np.asarray([v for v in group if registrable[v]], int)
        if idx.size == 0:
            continue
        vols = _block_mean(data[..., idx], base.factor)
        vols /= _robust_scale(vols, base_mask > 0.5)
        group_is_b0 = bool(is_b0[idx].all())
        ref = b0_base if group_is_b0 else vols.mean(axis=3)
        affine = ~is_b0[idx]
        params = _Params.identity(len(idx), affine=affine)
        pyramids = [lvl.prepare(vols) for lvl in levels]
        updates = 1 if group_is_b0 else REFERENCE_UPDATES
        for update in range(updates):
            refs = [lvl.reference(ref) for lvl in levels]
            if update == 0:
                _pyramid(params, pyramids, refs, levels, pe_axis=pe_axis)
            else:
                # The earlier pass aligned to a reference of another contrast (the shell
                # mean) and may sit in a spurious minimum: refine it, register afresh from
                # the identity as well, and keep whichever fits the new reference better.
                _gauss_newton(params, pyramids[-1], refs[-1], levels[-1], pe_axis=pe_axis, iterations=ITERATIONS[-1])
                fresh = _Params.identity(len(idx), affine=affine)
                _pyramid(fresh, pyramids, refs, levels, pe_axis=pe_axis)
                free = _free(affine)
                now = _linearise(params, pyramids[-1], refs[-1], levels[-1], pe_axis=pe_axis, free=free, scale=None)
                other = _linearise(fresh, pyramids[-1], refs[-1], levels[-1], pe_axis=pe_axis, free=free, scale=now.scale)
                params.take(fresh, other.cost < now.cost)
            if update + 1 < updates:
                aligned = _resample(vols, params, base, pe_axis)
                ref = _signal_prediction(aligned, bvals[idx], bvecs[idx], base_mask > 0.5)
        rot[idx], trans[idx], pe_aff[idx] = params.rot, params.trans, params.s

    points = (np.argwhere(mask) * vox - centre)[:: max(1, int(mask.sum()) // 20000)]
    return SeriesAlignment(
        rotations=rot,
        translations_mm=trans,
        pe_affine=pe_aff,
        pe_axis=pe_axis,
        centre_mm=centre,
        voxel_size_mm=vox,
        points_mm=points,
        group=group_of,
        registered=registrable,
    )


def object_contrast(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """How far each volume's object stands out of the background, ``(N,)`` in [0, 1].

    ``1 - median(background) / median(object)``: about 1 when the object is well above the
    noise floor, near 0 when the volume is noise only (e.g. free water at b = 2000 s/mm²,
    where S/S0 = e^-4). The background is the field of view outside the dilated mask; with
    too little of it (tightly cropped scans) every volume counts as having contrast.
    """
    outside = ~ndimage.binary_dilation(mask, iterations=3)
    if outside.sum() < 0.01 * mask.size or not mask.any():
        return np.ones(data.shape[3])
    stride = max(1, int(mask.sum()) // 20000)
    inner = data[mask][::stride]
    outer = data[outside][:: max(1, int(outside.sum()) // 20000)]
    obj = np.median(inner, axis=0)
    bg = np.median(outer, axis=0)
    return np.clip(1.0 - bg / np.where(obj > 0, obj, np.inf), 0.0, 1.0)


def _robust_scale(vols: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Median signal in the mask of each volume ``(X, Y, Z, K)`` -> ``(K,)`` (never 0)."""
    med = np.median(vols[mask], axis=0) if mask.any() else np.median(vols.reshape(-1, vols.shape[-1]), axis=0)
    return np.where(med > 0, med, 1.0).astype(np.float32)


@dataclass
class _Params:
    """Batched model parameters of K volumes (rigid + PE affine + intensity gain)."""

    rot: np.ndarray  # (K, 3, 3)
    trans: np.ndarray  # (K, 3) mm
    s: np.ndarray  # (K, 3)
    log_gain: np.ndarray  # (K,)
    affine: np.ndarray  # (K,) bool: PE affine allowed

    @classmethod
    def identity(cls, k: int, *, affine: np.ndarray) -> _Params:
        return cls(np.tile(np.eye(3), (k, 1, 1)), np.zeros((k, 3)), np.zeros((k, 3)), np.zeros(k), affine)

    def vector(self) -> np.ndarray:
        """``(K, 10)``: translation, rotation vector, PE affine, log gain."""
        return np.concatenate([self.trans, Rotation.from_matrix(self.rot).as_rotvec(), self.s, self.log_gain[:, None]], axis=1)

    def stepped(self, step: np.ndarray) -> _Params:
        """A copy moved by ``step`` ``(K, 10)`` (the rotation part is a left increment)."""
        rot = Rotation.from_rotvec(step[:, 3:6]).as_matrix() @ self.rot
        return _Params(rot, self.trans + step[:, :3], self.s + step[:, 6:9], self.log_gain + step[:, 9], self.affine)

    def take(self, other: _Params, where: np.ndarray) -> None:
        """Copy ``other``'s parameters of the volumes ``where`` ``(K,)`` is true, in place."""
        self.rot[where], self.trans[where], self.s[where] = other.rot[where], other.trans[where], other.s[where]
        self.log_gain[where] = other.log_gain[where]


@dataclass(frozen=True)
class _Grid:
    """A block-averaged voxel grid: level voxel ``i`` sits at ``origin + i * spacing`` (centred mm)."""

    factor: int
    spacing: np.ndarray  # (3,) mm
    origin: np.ndarray  # (3,) mm
    shape: tuple[int, int, int]

    @classmethod
    def of(cls, vox: np.ndarray, shape: tuple[int, ...], factor: int, origin: np.ndarray) -> _Grid:
        """The grid of ``_block_mean(·, factor)`` applied to a grid (vox, shape, origin)."""
        f = np.minimum(factor, shape[:3])  # thin axes are not averaged beyond their size
        new_shape = tuple(int(s // k) for s, k in zip(shape[:3], f, strict=True))
        return cls(factor, vox * f, origin + (f - 1) / 2 * vox, new_shape)  # type: ignore[arg-type]

    def points(self, index: np.ndarray) -> np.ndarray:
        return index * self.spacing + self.origin


@dataclass(frozen=True)
class _Level:
    """One pyramid level: a grid over the base grid and its object points."""

    grid: _Grid
    points: np.ndarray  # (M, 3) centred mm of the level voxels inside the dilated mask
    point_index: np.ndarray  # (M, 3) level voxel indices of those points
    sigma: float  # Gaussian smoothing (level voxels) of images and references

    @classmethod
    def build(cls, base: _Grid, factor: int, base_mask: np.ndarray, *, sigma: float) -> _Level:
        grid = _Grid.of(base.spacing, base.shape, factor, base.origin)
        small = _block_mean(base_mask[..., None], factor)[..., 0] > 0.25
        index = np.argwhere(ndimage.binary_dilation(small, iterations=1))
        index = index[:: max(1, len(index) // MAX_POINTS)]  # a regular subsample is as accurate
        return cls(grid, grid.points(index).astype(np.float32), index, sigma)

    def prepare(self, vols: np.ndarray):
        """Smoothed base-grid volumes ``(X, Y, Z, K)`` and their mm gradients, ``(K, 4, x, y, z)``."""

        small = _block_mean(vols, self.grid.factor)
        out = np.empty((small.shape[3], 4) + small.shape[:3], np.float32)
        for k in range(small.shape[3]):
            img = ndimage.gaussian_filter(small[..., k], self.sigma)
            out[k, 0] = img
            for axis, g in enumerate(np.gradient(img)):
                out[k, axis + 1] = g / self.grid.spacing[axis]
        return out

    def reference(self, ref: np.ndarray) -> np.ndarray:
        """A base-grid reference ``(X, Y, Z)`` (shared) or ``(X, Y, Z, K)`` (one per volume),
        smoothed at this level, at the level's points: ``(M,)`` or ``(K, M)``."""
        small = _block_mean(ref if ref.ndim == 4 else ref[..., None], self.grid.factor)
        i = self.point_index
        out = np.stack([ndimage.gaussian_filter(small[..., k], self.sigma)[i[:, 0], i[:, 1], i[:, 2]] for k in range(small.shape[3])])
        return out[0] if ref.ndim == 3 else out


def _block_mean(vols: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor``³ blocks of ``(X, Y, Z, K)`` (edges cropped to a multiple)."""
    if factor == 1:
        return np.array(vols, np.float32)  # a copy: callers scale the result in place
    f = [min(factor, s) for s in vols.shape[:3]]
    n = [s // k for s, k in zip(vols.shape[:3], f, strict=True)]
    v = vols[: n[0] * f[0], : n[1] * f[1], : n[2] * f[2]]
    return v.reshape(n[0], f[0], n[1], f[1], n[2], f[2], -1).mean(axis=(1, 3, 5)).astype(np.float32)


def _warp_points(params: _Params, points: np.ndarray, pe_axis: int) -> tuple[np.ndarray, np.ndarray]:
    """``u = R x + t`` and ``y = u + e_pe (s·u)`` for every volume: both ``(K, M, 3)``."""
    u = np.matmul(points[None], params.rot.transpose(0, 2, 1).astype(np.float32)) + params.trans[:, None, :].astype(np.float32)
    y = u.copy()
    y[..., pe_axis] += np.matmul(u, params.s[..., None].astype(np.float32))[..., 0]
    return u, y


def _sample(volumes, y_mm: np.ndarray, grid: _Grid):
    """Trilinear samples of ``volumes`` ``(K, C, X, Y, Z)`` at ``y_mm`` ``(K, M, 3)`` -> ``(K, C, M)``.

    Also returns which points fall inside the field of view, bool ``(K, M)``; outside
    points take the nearest edge value (their weight is then set to zero).
    """
    idx = (y_mm - grid.origin) / grid.spacing
    size = np.array(grid.shape, float)
    inside = np.all((idx >= 0) & (idx <= size - 1), axis=-1)
    out = np.empty(volumes.shape[:2] + (y_mm.shape[1],), np.float32)
    for k in range(volumes.shape[0]):
        coords = idx[k].T
        for c in range(volumes.shape[1]):
            out[k, c] = ndimage.map_coordinates(volumes[k, c], coords, order=1, mode="nearest")
    return out, inside


def _pyramid(params: _Params, pyramids: list, refs: list[np.ndarray], levels: list[_Level], *, pe_axis: int) -> None:
    """Coarse-to-fine :func:`_gauss_newton` over all pyramid levels, in place."""
    for lvl, pyr, ref, iters in zip(levels, pyramids, refs, ITERATIONS, strict=True):
        _gauss_newton(params, pyr, ref, lvl, pe_axis=pe_axis, iterations=iters)


def _free(affine: np.ndarray) -> np.ndarray:
    """Which of the 10 parameters each volume estimates ``(K, 10)``: no PE affine for b0s."""
    free = np.ones((len(affine), 10), bool)
    free[~affine, 6:9] = False
    return free


def _gauss_newton(params: _Params, volumes, ref: np.ndarray, level: _Level, *, pe_axis: int, iterations: int) -> None:
    """Levenberg-Marquardt on the robust (Huber) MAP cost of all volumes, in place.

    A step is kept only where it lowers the volume's cost (else its damping grows and the
    step is retried smaller), so the estimate never wanders away from a better fit: on
    objects with a symmetry an unchecked Gauss-Newton drifted along the flat direction
    into large spurious rotations. The residual scale is fixed within the call.
    """
    free = _free(params.affine)
    state = _linearise(params, volumes, ref, level, pe_axis=pe_axis, free=free, scale=None)
    lam = np.full(len(params.rot), 1e-3)
    for _ in range(iterations):
        hess, rhs = state.hess, state.rhs
        diag = np.einsum("kii->ki", hess)
        damp = hess + np.einsum("ki,ij->kij", lam[:, None] * diag + (~free) * 1.0 + 1e-9, np.eye(10))
        step = -np.linalg.solve(damp, rhs[..., None])[..., 0] * free
        # Trust region: at most one level voxel, ~2 degrees and 2 % PE scaling per step.
        step[:, :3] = np.clip(step[:, :3], -level.grid.spacing, level.grid.spacing)
        step[:, 3:9] = np.clip(step[:, 3:9], -0.035, 0.035)
        trial = params.stepped(step)
        new = _linearise(trial, volumes, ref, level, pe_axis=pe_axis, free=free, scale=state.scale)
        better = new.cost < state.cost
        params.take(trial, better)
        state = state.merged(new, better)
        lam = np.where(better, lam / 3.0, lam * 8.0)
        moved = np.where(better[:, None], np.abs(step), 0.0)
        if moved[:, :3].max() < 0.01 and moved[:, 3:9].max() < 1e-4 and np.all(better | (lam > 1e3)):
            break  # 0.01 mm, 0.006°


@dataclass(frozen=True)
class _Linearised:
    """Cost ``(K,)``, normal equations ``(K, 10, 10)``/``(K, 10)`` and residual scale ``(K,)``."""

    cost: np.ndarray
    hess: np.ndarray
    rhs: np.ndarray
    scale: np.ndarray

    def merged(self, other: _Linearised, take: np.ndarray) -> _Linearised:
        pick = lambda a, b: np.where(take.reshape((-1,) + (1,) * (a.ndim - 1)), b, a)
        return _Linearised(*(pick(a, b) for a, b in zip(
            (self.cost, self.hess, self.rhs, self.scale), (other.cost, other.hess, other.rhs, other.scale), strict=True
        )))


def _linearise(params: _Params, volumes, ref: np.ndarray, level: _Level, *, pe_axis: int, free: np.ndarray,
               scale: np.ndarray | None) -> _Linearised:
    """Robust cost of ``Σ ρ(g·I_v(y(x)) - ref(x))`` plus the prior, and its Gauss-Newton normal equations.

    ``scale`` is the residual standard deviation per volume; ``None`` estimates it (MAD).
    Points that leave the field of view count at the mean cost of the others, so moving
    the object out of view earns nothing.
    """
    x = level.points
    u, y = _warp_points(params, x, pe_axis)
    samples, inside = _sample(volumes, y, level.grid)
    gain = np.exp(params.log_gain)[:, None]
    warped = samples[:, 0] * gain
    grad = samples[:, 1:].transpose(0, 2, 1) * gain[..., None]  # (K, M, 3) dI/dy
    r = warped - (ref[None] if ref.ndim == 1 else ref)
    if scale is None:
        scale = np.median(np.abs(r), axis=1) * 1.4826 + 1e-6
    c = HUBER_K * scale[:, None]
    a = np.abs(r)
    rho = np.where(a <= c, 0.5 * r**2, c * a - 0.5 * c**2)
    n_inside = np.maximum(inside.sum(axis=1), 1)
    w = (np.where(a <= c, 1.0, c / np.maximum(a, 1e-12)) * inside).astype(np.float32)
    gu = grad + grad[..., pe_axis : pe_axis + 1] * params.s[:, None, :]  # dI/du = dI/dy (I + e s^T)
    q = u - params.trans[:, None, :]  # R x
    jac = np.concatenate(
        [gu, np.cross(q, gu), grad[..., pe_axis : pe_axis + 1] * u, warped[..., None]], axis=-1
    )  # (K, M, 10): t, left rotation increment, s, log gain
    jac *= free[:, None, :].astype(np.float32)
    weighted = jac * w[..., None]
    hess = np.matmul(weighted.transpose(0, 2, 1), jac).astype(np.float64)
    rhs = np.matmul(weighted.transpose(0, 2, 1), r[..., None])[..., 0].astype(np.float64)
    # Zero-mean Gaussian prior (MAP, see PRIOR_SD): keeps directions the image does not
    # determine (rotation about a symmetry axis, shifts along an object that fills the
    # field of view) at zero instead of letting them wander.
    current = params.vector()
    precision = (scale[:, None].astype(np.float64) ** 2) * x.shape[0] / PRIOR_SD[None] ** 2 * free
    hess += np.einsum("ki,ij->kij", precision, np.eye(10))
    rhs += precision * current
    cost = (rho * inside).sum(axis=1) * (x.shape[0] / n_inside) + 0.5 * (precision * current**2).sum(axis=1)
    return _Linearised(cost.astype(np.float64), hess, rhs, scale)


def _resample(vols: np.ndarray, params: _Params, grid: _Grid, pe_axis: int) -> np.ndarray:
    """Base-grid volumes ``(X, Y, Z, K)`` pulled back into the reference space (gain applied)."""

    index = np.stack(np.meshgrid(*[np.arange(s) for s in grid.shape], indexing="ij"), axis=-1).reshape(-1, 3)
    _, y = _warp_points(params, grid.points(index).astype(np.float32), pe_axis)
    samples, _ = _sample(np.moveaxis(vols, 3, 0)[:, None], y, grid)
    samples = samples[:, 0] * np.exp(params.log_gain)[:, None].astype(np.float32)
    return np.moveaxis(samples.reshape((-1,) + grid.shape), 0, 3)


def _signal_prediction(aligned: np.ndarray, bvals: np.ndarray, bvecs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Contrast-matched reference of each volume: the diffusion tensor model's prediction.

    A log-linear tensor fit (DIPY's design matrix) to the aligned volumes ``(X, Y, Z, K)``
    predicts each volume's own direction-dependent contrast, which a plain shell mean
    lacks (white matter is dark along its fibres): Andersson & Sotiropoulos 2016 register
    to model predictions for this reason. Needs 7 volumes with 6 non-collinear
    directions; with fewer the shell mean is returned for every volume.
    """
    from dipy.core.gradients import gradient_table
    from dipy.reconst.dti import design_matrix

    k = aligned.shape[3]
    mean = aligned.mean(axis=3)
    if k < 7 or np.linalg.matrix_rank(np.asarray(bvecs, float)) < 3:
        return mean
    design = design_matrix(gradient_table(np.asarray(bvals, float), bvecs=np.asarray(bvecs, float), b0_threshold=0))
    if np.linalg.matrix_rank(design) < 7:
        return mean
    inside = ndimage.binary_dilation(mask, iterations=2)
    log_signal = np.log(np.maximum(aligned[inside], 1e-3 * max(float(mean[inside].mean()), 1e-12)))
    coef, *_ = np.linalg.lstsq(design, log_signal.T, rcond=None)
    out = np.repeat(mean[..., None], k, axis=3)
    out[inside] = np.exp(np.clip(design @ coef, -30, 30)).T.astype(np.float32)
    return out


@dataclass(frozen=True)
class EddyFit:
    """The gradient-dependent part of the PE parameters, separated from rigid motion.

    The PE shift ``t_v[pe]``, shears and scaling ``s_v`` of every registered
    diffusion-weighted volume are regressed on ``b·g`` (b in ms/µm², i.e. s/mm² / 1000;
    ``g`` the unit gradient) with one intercept per contrast group: a linear eddy-current
    field follows the gradient that caused it (Jezzard et al. 1998; Andersson &
    Sotiropoulos 2016). Parameters are expressed as PE displacement in voxels (shears
    and scaling times the object's RMS extent along their axis) so they can be pooled.

    Attributes
    ----------
    volumes
        The volumes in the fit, ``(K,)``.
    measured_vox, fitted_vox
        Per volume ``[shift, shear/scale along axis 0, 1, 2]`` in PE voxels, ``(K, 4)``:
        as estimated, and as predicted by the gradient terms (intercepts excluded).
    coefficients
        Gradient coefficients ``(3, 4)``: rows b·g_x, b·g_y, b·g_z; columns as above
        (voxels per ms/µm²).
    r2
        Fraction of the variance of the (group-centred) parameters the gradients explain.
    shift_mm
        Gradient-predicted PE shift of every volume in mm, ``(N,)`` (0 where not fitted);
        motion subtracts it from the PE translation.
    leverage
        ``x_v (XᵀX)⁻¹ x_vᵀ`` of each volume's gradient terms ``(K,)``: the variance of its
        fitted parameters is ``leverage · residual_cov`` (ordinary least squares).
    residual_cov
        Residual covariance of the four parameters ``(4, 4)``, voxels².
    """

    volumes: np.ndarray
    measured_vox: np.ndarray
    fitted_vox: np.ndarray
    coefficients: np.ndarray
    r2: float
    shift_mm: np.ndarray
    leverage: np.ndarray
    residual_cov: np.ndarray


def fit_eddy(alignment: SeriesAlignment, bvals: np.ndarray, bvecs: np.ndarray, dw_volumes: tuple[int, ...]) -> EddyFit:
    """Regress the PE parameters of the diffusion-weighted volumes on their gradients."""
    n = alignment.n_volumes
    pe = alignment.pe_axis
    vox_pe = float(alignment.voxel_size_mm[pe])
    lever = np.sqrt(np.mean(alignment.points_mm**2, axis=0)) if len(alignment.points_mm) else np.ones(3)
    vols = np.array([v for v in dw_volumes if alignment.registered[v]], int)
    params = np.column_stack([alignment.translations_mm[vols, pe], alignment.pe_affine[vols] * lever]) / vox_pe
    empty = EddyFit(vols, params, np.zeros_like(params), np.zeros((3, 4)), float("nan"), np.zeros(n), np.zeros(len(vols)), np.zeros((4, 4)))
    groups = np.unique(alignment.group[vols])
    if len(vols) < 3 + len(groups) + 1:
        return empty
    bg = np.asarray(bvecs, float)[vols] * (np.asarray(bvals, float)[vols, None] / 1000.0)
    dummies = (alignment.group[vols, None] == groups[None]).astype(float)
    design = np.column_stack([bg, dummies])
    beta, *_ = np.linalg.lstsq(design, params, rcond=None)
    fitted = bg @ beta[:3]
    centred = params - dummies @ np.linalg.lstsq(dummies, params, rcond=None)[0]
    total = float(np.sum(centred**2))
    residual = float(np.sum((params - design @ beta) ** 2))
    r2 = 1.0 - residual / total if total > 0 else float("nan")
    shift_mm = np.zeros(n)
    shift_mm[vols] = fitted[:, 0] * vox_pe
    inverse = np.linalg.pinv(design.T @ design)[:3, :3]
    leverage = np.einsum("ki,ij,kj->k", bg, inverse, bg)
    resid = params - design @ beta
    residual_cov = resid.T @ resid / max(len(vols) - design.shape[1], 1)
    return EddyFit(vols, params, fitted, beta[:3], r2, shift_mm, leverage, residual_cov)
