"""lcid — Less Confusion in Diffusion.

A DWI quality assistant, a Flamingo-style vision-language model for questions about
MRI images, and diffusion-model synthesis of MRI.

The package is quiet and offline by default: no telemetry, library logging off.
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())


def check(path, **kwargs):
    """Run the DWI quality check on a scan; see :func:`lcid.api.check`."""
    from lcid.api import check as _check

    return _check(path, **kwargs)


__all__ = ["__version__", "check"]
