"""Sessions of the web app: one private folder per check, deleted after a time-to-live.

A session holds what the page fetches after a check (findings.json, report.html, the
volume for the viewer, a preview slice for questions) and the findings for the chat's
context. Every folder lives under one private (0700) root that is removed on shutdown.
"""

from __future__ import annotations

import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lcid.server.uploads import private_dir

_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


@dataclass
class Session:
    """One check's files and results.

    Attributes
    ----------
    id
        Random URL-safe token (128 bits); the only handle a client gets.
    folder
        Private folder with the session's files.
    created
        ``time.monotonic()`` at creation, s.
    findings
        The check's findings.json document, for the chat's context (None until done).
    acquisition
        A one-line description of the acquisition for the chat's context.
    """

    id: str
    folder: Path
    created: float
    findings: dict[str, Any] | None = None
    acquisition: str = ""
    files: dict[str, Path] = field(default_factory=dict)


class SessionStore:
    """Thread-safe store of sessions with a time-to-live and a cap on their number.

    Parameters
    ----------
    ttl_s
        Seconds a session is kept after creation.
    max_sessions
        Most sessions kept at once; the oldest goes first when a new one needs room.
    """

    def __init__(self, *, ttl_s: float = 3600.0, max_sessions: int = 32) -> None:
        self.ttl_s = float(ttl_s)
        self.max_sessions = int(max_sessions)
        self.root = private_dir(prefix="lcid-serve-")
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self) -> Session:
        """A new, empty session (expired and surplus sessions are removed first)."""
        self.sweep()
        with self._lock:
            while len(self._sessions) >= self.max_sessions:
                oldest = min(self._sessions.values(), key=lambda s: s.created)
                self._remove_locked(oldest.id)
            sid = secrets.token_urlsafe(16)
            session = Session(id=sid, folder=private_dir(prefix="s-", parent=self.root), created=time.monotonic())
            self._sessions[sid] = session
        return session

    def get(self, sid: str) -> Session | None:
        """The live session ``sid``, or None when unknown, malformed or expired."""
        if not _ID.match(sid):
            return None
        with self._lock:
            session = self._sessions.get(sid)
            if session is None:
                return None
            if time.monotonic() - session.created > self.ttl_s:
                self._remove_locked(sid)
                return None
            return session

    def discard(self, sid: str) -> bool:
        """Delete a session and its files; True when it existed."""
        with self._lock:
            return self._remove_locked(sid)

    def sweep(self) -> int:
        """Delete expired sessions; returns how many went."""
        now = time.monotonic()
        with self._lock:
            expired = [sid for sid, s in self._sessions.items() if now - s.created > self.ttl_s]
            for sid in expired:
                self._remove_locked(sid)
        return len(expired)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def close(self) -> None:
        """Delete every session and the root folder."""
        with self._lock:
            self._sessions.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def _remove_locked(self, sid: str) -> bool:
        session = self._sessions.pop(sid, None)
        if session is None:
            return False
        shutil.rmtree(session.folder, ignore_errors=True)
        return True
