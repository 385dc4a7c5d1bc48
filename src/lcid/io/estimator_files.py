"""A fitted scikit-learn model and its JSON record, saved side by side in a model folder.

skops, never pickle: loading refuses any type outside scikit-learn's own (and those named in
``trusted``), so a model folder from elsewhere cannot run code. Used by the VQA prompt prior
and the DWI slice-statistics classifier.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lcid.errors import InputError


def write_estimator(folder: str | Path, model_file: str, estimator: Any, record_file: str,
                    record: dict[str, Any]) -> None:
    """Write ``estimator`` (zip-compressed skops) and ``record`` (JSON) into ``folder``, both or neither."""
    import skops.io

    from lcid.io.atomic import atomic_dir

    with atomic_dir(folder) as tmp:
        skops.io.dump(estimator, tmp / model_file, compression=zipfile.ZIP_DEFLATED)
        (tmp / record_file).write_text(json.dumps(record, indent=2) + "\n")


def read_estimator(folder: str | Path, model_file: str, record_file: str, *,
                   trusted: Sequence[str] = ()) -> tuple[Any, dict[str, Any]] | None:
    """``(estimator, record)`` saved by :func:`write_estimator`; ``None`` when ``folder`` has no
    record; :class:`InputError` when either file is unreadable or holds an untrusted type."""
    import skops.io

    from lcid.vlm.model_card import load_record

    folder = Path(folder)
    record = load_record(folder, record_file)
    if record is None:
        return None
    try:
        estimator = skops.io.load(folder / model_file, trusted=list(trusted) or None)
    except Exception as exc:  # skops raises OSError, UntrustedTypesFoundException, zip errors ...
        raise InputError(f"cannot read {folder / model_file} ({exc.__class__.__name__})") from exc
    return estimator, record
