"""A digest of the simulator's own code, for caches of simulated scans.

A cache keyed only by the recipe (source, problems, seed) would hand back scans made by an
older simulator after its code changed, so a rebuilt data set would silently mix simulator
versions. The digest covers every Python file of :mod:`lcid.simulate` and the shared
severity scale it draws from.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path


@cache
def simulator_fingerprint() -> str:
    """16 hex digits of SHA-1 over the simulator's source files (path and content, sorted)."""
    from lcid.dwi import severity

    root = Path(__file__).resolve().parent
    files = sorted(root.rglob("*.py")) + [Path(severity.__file__).resolve()]
    digest = hashlib.sha1()
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
