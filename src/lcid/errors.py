"""Errors the user can act on.

Every problem with the user's input is raised as :class:`InputError` with a one-line
message naming the problem; the command line prints it and exits with code 2.
"""

from __future__ import annotations


class InputError(ValueError):
    """Unusable input: the message is one line that names the problem."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
