"""Safe filling of the knowledge base's text templates.

Templates use :meth:`str.format` syntax (``{volumes}``, ``{m[max_fd_mm]:.2f}``). A field
the scan does not provide renders as ``unknown`` instead of raising; a part wrapped in
``[[ ... ]]`` is dropped entirely when any field inside it is missing. Written by hand
because :class:`string.Template` has no format specs and :meth:`str.format_map` raises
on nested lookups (``m[name]``) that are absent.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

UNKNOWN = "unknown"
_OPTIONAL = re.compile(r"\[\[(.*?)\]\]", re.DOTALL)


class _Missing(Exception):
    """A field was absent while formatting an optional part."""


class _SafeFormatter(string.Formatter):
    def __init__(self, *, strict: bool) -> None:
        super().__init__()
        self.strict = strict

    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        try:
            obj, first = super().get_field(field_name, args, kwargs)
        except (KeyError, IndexError, AttributeError, TypeError):
            obj, first = None, field_name
        if is_missing(obj):
            if self.strict:
                raise _Missing(field_name)
            return UNKNOWN, first
        return obj, first

    def format_field(self, value: Any, format_spec: str) -> str:
        try:
            return super().format_field(value, format_spec)
        except (ValueError, TypeError):  # e.g. ".2f" applied to text
            return str(value)


_LENIENT = _SafeFormatter(strict=False)
_STRICT = _SafeFormatter(strict=True)


def is_missing(value: Any) -> bool:
    """True for None, NaN, infinity, empty strings and empty containers."""
    if value is None:
        return True
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, (str, list, tuple, dict, set)):
        return len(value) == 0
    return False


def render(template: str, fields: Mapping[str, Any]) -> str:
    """Fill ``template`` with ``fields``; never raises on absent or malformed fields.

    >>> render("moved {m[fd]:.1f} mm[[ in volumes {volumes}]]", {"m": {"fd": 2.345}})
    'moved 2.3 mm'
    >>> render("axis {pe}", {})
    'axis unknown'
    """
    parts = _OPTIONAL.split(template)
    out = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            out.append(_format(_LENIENT, part, fields))
        else:
            try:
                out.append(_format(_STRICT, part, fields))
            except _Missing:
                continue
    result = "".join(out)
    if "\n" not in template:  # a dropped part may leave doubled spaces in one-line prose
        result = re.sub(r" {2,}", " ", result)
    return result.strip()


def _format(formatter: _SafeFormatter, text: str, fields: Mapping[str, Any]) -> str:
    try:
        return formatter.vformat(text, (), fields)
    except _Missing:
        raise
    except (ValueError, IndexError):  # unbalanced braces in a template: show it as written
        return text


def format_indices(indices: Sequence[int] | None, *, limit: int = 8) -> str:
    """Readable list of 0-based indices with runs collapsed.

    >>> format_indices([0, 1, 2, 3, 7, 12])
    '0-3, 7 and 12'
    >>> format_indices(list(range(0, 40, 2)), limit=3)
    '0, 2, 4 and 17 more'
    """
    values = sorted({int(i) for i in indices or ()})
    runs: list[str] = []
    start = prev = None
    for v in values:
        if start is None:
            start = prev = v
        elif v == prev + 1:
            prev = v
        else:
            runs.append(_run(start, prev))
            start = prev = v
    if start is not None:
        runs.append(_run(start, prev))
    if not runs:
        return ""
    if len(runs) > limit:
        rest = len(runs) - limit
        return f"{', '.join(runs[:limit])} and {rest} more"
    return runs[0] if len(runs) == 1 else f"{', '.join(runs[:-1])} and {runs[-1]}"


def _run(start: int, stop: int) -> str:
    if stop == start:
        return str(start)
    if stop == start + 1:
        return f"{start}, {stop}"
    return f"{start}-{stop}"


def format_number(value: Any) -> str:
    """Compact text for a metric value (3 significant digits for floats).

    >>> format_number(2.34567), format_number(12), format_number([1.5, 2.0])
    ('2.35', '12', '[1.5, 2]')
    """
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return UNKNOWN if math.isnan(value) else f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_number(v) for v in value[:6]) + (", …]" if len(value) > 6 else "]")
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return format_number(value.item())
    return str(value)
