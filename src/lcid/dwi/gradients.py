"""Gradient-table facts: shells, b0s, unique directions, coverage of the sphere.

All functions take b-values in s/mm² (shape ``(N,)``) and b-vectors ``(N, 3)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: b-values at or below this are treated as b0 (s/mm²); scanners write small non-zero values.
B0_THRESHOLD = 50.0
#: b-values within this distance belong to the same shell (s/mm²).
SHELL_TOLERANCE = 100.0
#: Directions closer than this angle (degrees, antipodal-symmetric) count as the same direction.
COLLINEAR_DEG = 5.0


@dataclass(frozen=True)
class Shell:
    """One b-value shell: nominal b (s/mm²), volume indices, and unique directions."""

    bval: float
    volumes: tuple[int, ...]
    unique_directions: int

    @property
    def count(self) -> int:
        return len(self.volumes)

    def to_dict(self) -> dict:
        doc = {"bval": int(round(self.bval)), "count": self.count}
        if self.bval > B0_THRESHOLD:
            doc["unique_directions"] = self.unique_directions
        return doc


def b0_mask(bvals: np.ndarray) -> np.ndarray:
    """Boolean ``(N,)``: which volumes are b0.

    >>> b0_mask(np.array([0, 5, 1000])).tolist()
    [True, True, False]
    """
    return np.asarray(bvals, dtype=float) <= B0_THRESHOLD


def shells(bvals: np.ndarray, bvecs: np.ndarray) -> list[Shell]:
    """Group volumes into shells by b-value (b0 first), counting unique directions per shell.

    >>> [s.to_dict() for s in shells(np.array([0, 1000, 1010]), np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]]))]
    [{'bval': 0, 'count': 1}, {'bval': 1005, 'count': 2, 'unique_directions': 2}]
    """
    bvals = np.asarray(bvals, dtype=float)
    order = np.argsort(bvals, kind="stable")
    groups: list[list[int]] = []
    for index in order:
        if groups and abs(bvals[index] - bvals[groups[-1][0]]) <= SHELL_TOLERANCE and (
            (bvals[index] <= B0_THRESHOLD) == (bvals[groups[-1][0]] <= B0_THRESHOLD)
        ):
            groups[-1].append(int(index))
        else:
            groups.append([int(index)])
    result = []
    for group in groups:
        b = float(np.mean(bvals[group]))
        if b <= B0_THRESHOLD:
            b = 0.0 if np.all(bvals[group] == 0) else b
        n_unique = 0 if b <= B0_THRESHOLD else unique_directions(np.asarray(bvecs)[group])
        result.append(Shell(bval=b, volumes=tuple(sorted(group)), unique_directions=n_unique))
    return result


def unique_directions(vectors: np.ndarray, *, tolerance_deg: float = COLLINEAR_DEG) -> int:
    """Number of non-collinear directions; antipodal pairs (v, -v) count once.

    >>> unique_directions(np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0]]))
    2
    """
    return len(direction_representatives(vectors, tolerance_deg=tolerance_deg))


def direction_representatives(vectors: np.ndarray, *, tolerance_deg: float = COLLINEAR_DEG) -> np.ndarray:
    """One unit vector per group of (antipodally) collinear directions, shape ``(K, 3)``."""
    vectors = np.asarray(vectors, dtype=float).reshape(-1, 3)
    norms = np.linalg.norm(vectors, axis=1)
    vectors = vectors[norms > 1e-6] / norms[norms > 1e-6, None]
    cos_limit = np.cos(np.deg2rad(tolerance_deg))
    kept: list[np.ndarray] = []
    for v in vectors:
        if not kept or np.max(np.abs(np.asarray(kept) @ v)) < cos_limit:
            kept.append(v)
    return np.asarray(kept).reshape(-1, 3)


def coverage(vectors: np.ndarray) -> dict[str, float]:
    """How evenly directions cover the sphere (antipodally symmetric).

    Returns
    -------
    dict
        ``condition_number`` of the DTI design matrix (lower is better, ~1.6 for ideal sets),
        ``max_gap_deg``: the largest angle from any point on the sphere to its nearest
        direction (smaller is better), and ``mean_resultant``: length of the mean of the
        antipodally-symmetrised dyadics' principal axis (0 isotropic, 1 all alike).
    """
    dirs = direction_representatives(vectors)
    if len(dirs) < 1:
        return {"condition_number": float("inf"), "max_gap_deg": 90.0, "mean_resultant": 1.0}
    x, y, z = dirs.T
    design = np.stack([x * x, y * y, z * z, 2 * x * y, 2 * x * z, 2 * y * z], axis=1)
    sv = np.linalg.svd(design, compute_uv=False)
    cond = float(sv[0] / sv[-1]) if len(dirs) >= 6 and sv[-1] > 1e-9 else float("inf")
    probe = _fibonacci_sphere(2000)
    nearest = np.max(np.abs(probe @ dirs.T), axis=1)
    max_gap = float(np.degrees(np.arccos(np.clip(nearest.min(), -1, 1))))
    tensor = dirs.T @ dirs / len(dirs)
    anis = float((np.linalg.eigvalsh(tensor)[-1] - 1 / 3) * 1.5)
    return {"condition_number": cond, "max_gap_deg": max_gap, "mean_resultant": anis}


def _fibonacci_sphere(n: int) -> np.ndarray:
    """``n`` near-uniform unit vectors on the sphere (golden-angle spiral)."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5**0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)


#: trace of the inverse second-moment matrix of the DTI design row
#: ``(x², y², z², 2xy, 2xz, 2yz)`` over the uniform sphere (E[x⁴] = 1/5, E[x²y²] = 1/15):
#: 18 from the diagonal block plus 3 x 15/4 from the off-diagonal terms.
_UNIFORM_DESIGN_TRACE = 29.25


def effective_directions(vectors: np.ndarray) -> float:
    """Tensor-estimation efficiency of a direction set, as an equivalent number of directions.

    The A-optimality criterion: the total variance of a least-squares tensor fit is
    proportional to ``trace((BᵀB)⁻¹)`` for the design ``B`` (rows ``x², y², z², 2xy, 2xz,
    2yz``). ``N`` directions spread uniformly give ``29.25 / N``; this returns the ``N``
    of a uniform set with the same variance. Well spread sets score close to their count,
    sets bunched in a cap far less, coplanar sets (no tensor estimable) 0.

    >>> round(effective_directions(np.eye(3)), 1)
    0.0
    """
    dirs = direction_representatives(vectors)
    if len(dirs) < 6:
        return 0.0
    x, y, z = dirs.T
    design = np.stack([x * x, y * y, z * z, 2 * x * y, 2 * x * z, 2 * y * z], axis=1)
    normal = design.T @ design
    if np.linalg.cond(normal) > 1e10:
        return 0.0
    return float(_UNIFORM_DESIGN_TRACE / np.trace(np.linalg.inv(normal)))
