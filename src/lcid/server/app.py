"""The FastAPI app behind ``lcid serve``: one offline page and a small JSON API.

Routes (see ``/docs`` or ``/openapi.json`` of a running server):

- ``GET /`` the page; ``/static/...`` its script, style and the vendored NiiVue viewer.
- ``GET /api/health`` -> ``{"status": "ok", "version": ...}``.
- ``POST /api/check`` multipart ``dwi`` (NIfTI, or zip of a DICOM series), ``bval``,
  ``bvec``, optional ``sidecar`` -> the findings.json document plus ``session``.
- ``GET /api/session/{id}/{findings.json|report.html|volume.nii.gz|volume.nii|preview.png}``
  and ``DELETE /api/session/{id}``.
- ``POST /api/ask`` multipart ``image`` (or ``session``), ``question``, optional ``acq``,
  ``history``, ``model`` -> the JSON of ``lcid ask --json``.
- ``GET /api/models`` -> ``{"models": [...], "default": ...}`` (the shipped VLMs).

Every error is ``{"error": "one-line reason"}``: 400 malformed request, 404 unknown
session, 413 too large, 415 wrong file type, 422 unusable content, 500 a bug. The server
makes no outgoing request, logs no file names, and its pages forbid the browser to
contact anything but this server (Content-Security-Policy).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from lcid import __version__
from lcid.errors import InputError
from lcid.io.gradient_files import read_bvals
from lcid.server import analysis
from lcid.server.body_limit import BodyLimit
from lcid.server.sessions import Session, SessionStore
from lcid.server.uploads import (
    MAX_TEXT_BYTES,
    UploadRejected,
    ZipLimits,
    private_dir,
    require_kind,
    save_stream,
)

log = logging.getLogger("lcid.server")
STATIC = Path(__file__).parent / "static"

#: The page may load and fetch only from this server; NiiVue needs blob: workers and wasm.
PAGE_CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self' blob: data:; "
    "font-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'"
)
#: The report is self-contained (inline style, embedded figures) and may contact nothing.
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'unsafe-inline'; "
    "frame-ancestors 'self'"
)
SESSION_FILES = {
    "findings.json": "application/json",
    "report.html": "text/html; charset=utf-8",
    "volume.nii.gz": "application/gzip",
    "volume.nii": "application/octet-stream",
    "preview.png": "image/png",
}
IMAGE_MAX_BYTES = 32 << 20


@dataclass(frozen=True)
class ServerConfig:
    """Settings of one app instance.

    Attributes
    ----------
    max_upload_mb
        Largest request body, MiB (the DWI upload plus its small companions).
    session_ttl_s
        Seconds a check's files are kept for the page to fetch.
    max_sessions
        Most sessions kept at once (oldest removed first).
    max_concurrent_checks
        Checks run at the same time; more wait their turn (each holds a series in memory).
    """

    max_upload_mb: int = 512
    session_ttl_s: float = 3600.0
    max_sessions: int = 32
    max_concurrent_checks: int = 2

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb) << 20


def create_app(config: ServerConfig = ServerConfig()) -> FastAPI:
    """The web app; sessions live in a private temporary folder removed on shutdown."""
    store = SessionStore(ttl_s=config.session_ttl_s, max_sessions=config.max_sessions)
    check_slots = asyncio.Semaphore(config.max_concurrent_checks)
    ask_slots = asyncio.Semaphore(1)
    zip_limits = ZipLimits(max_total_bytes=max(4 * config.max_upload_bytes, 1 << 30))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(_sweep_forever(store))
        try:
            yield
        finally:
            sweeper.cancel()
            store.close()

    app = FastAPI(
        title="lcid",
        version=__version__,
        description="Check a diffusion MRI series, view it, and ask questions about MRI images. Local and offline.",
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.sessions = store
    # 1 MiB of slack for the multipart framing and the small text companions.
    app.add_middleware(BodyLimit, max_bytes=config.max_upload_bytes + (1 << 20))
    _install_error_handlers(app)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_CSP})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/health", summary="Liveness and version")
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/api/models", summary="Installed vision-language models")
    async def models() -> dict[str, Any]:
        names = await run_in_threadpool(analysis.installed_models)
        return {"models": names, "default": analysis.default_model(names)}

    @app.post("/api/check", summary="Check a diffusion series", response_model=None)
    async def check(
        dwi: Annotated[UploadFile, File(description="4D NIfTI (.nii/.nii.gz) or a zip of a DICOM series")],
        bval: Annotated[UploadFile | None, File(description="FSL .bval (required with a NIfTI)")] = None,
        bvec: Annotated[UploadFile | None, File(description="FSL .bvec (required with a NIfTI)")] = None,
        sidecar: Annotated[UploadFile | None, File(description="BIDS/dcm2niix JSON sidecar")] = None,
    ) -> dict[str, Any]:
        """Run every detector; returns findings.json plus ``session`` (URLs of the report, volume, preview)."""
        session = store.create()
        started = time.perf_counter()
        try:
            series = await _receive_series(session, dwi, bval, bvec, sidecar, config, zip_limits)
            async with check_slots:
                outcome = await run_in_threadpool(analysis.run_check, series, session.folder)
        except BaseException:
            store.discard(session.id)
            raise
        session.findings, session.acquisition = outcome.document, outcome.acquisition
        log.info("check done in %.1f s", time.perf_counter() - started)
        base = f"/api/session/{session.id}"
        return {
            **outcome.document,
            "session": {
                "id": session.id,
                "findings_url": f"{base}/findings.json",
                "report_url": f"{base}/report.html",
                "volume_url": f"{base}/{series.image.name}",
                "preview_url": f"{base}/preview.png",
                "bvals": [float(b) for b in read_bvals(series.bval)],
                "expires_in_s": int(config.session_ttl_s),
            },
        }

    @app.get("/api/session/{sid}/{name}", summary="A file of a check's session", response_model=None)
    async def session_file(sid: str, name: str) -> FileResponse:
        session = _session_or_404(store, sid)
        path = session.folder / name
        if name not in SESSION_FILES or not path.is_file():
            raise StarletteHTTPException(404, f"no {name} in this session")
        headers = {"Cache-Control": "no-store"}
        if name == "report.html":
            headers["Content-Security-Policy"] = REPORT_CSP
        return FileResponse(path, media_type=SESSION_FILES[name], headers=headers)

    @app.delete("/api/session/{sid}", summary="Delete a session and its files now")
    async def delete_session(sid: str) -> dict[str, bool]:
        return {"deleted": store.discard(sid)}

    @app.post("/api/ask", summary="Ask the vision-language model about an image", response_model=None)
    async def ask(
        question: Annotated[str, Form(min_length=1, max_length=2000)],
        image: Annotated[UploadFile | None, File(description="PNG or JPEG slice")] = None,
        session: Annotated[str | None, Form(description="Session id of a check: its preview and findings")] = None,
        acq: Annotated[str | None, Form(max_length=2000, description="Acquisition in words")] = None,
        history: Annotated[str | None, Form(description="JSON list of earlier {question, answer}")] = None,
        model: Annotated[
            str | None, Form(pattern=r"^[a-z0-9_-]{1,32}$", description="Shipped model (default: dwi, else vqa-rad)")
        ] = None,
    ) -> dict[str, Any]:
        """Answer a question about a slice, with the acquisition and a check's findings as context."""
        turns = _parse_history(history)
        checked = _session_or_404(store, session) if session else None
        findings = checked.findings if checked else None
        acquisition = acq or (checked.acquisition if checked else None)
        with _scratch(store) as folder:
            if image is not None and image.filename is not None:
                raw = folder / "upload"
                save_stream(image.file, raw, max_bytes=IMAGE_MAX_BYTES, what="the image")
                kind = require_kind(raw, ("png", "jpeg"), what="the image")
                path = raw.rename(folder / f"image.{'png' if kind == 'png' else 'jpg'}")
            elif checked is not None:
                path = checked.folder / "preview.png"
            else:
                raise UploadRejected("send an image (PNG or JPEG) or the session of a check", status=400)
            async with ask_slots:
                return await run_in_threadpool(
                    analysis.ask_model,
                    path,
                    question=question,
                    acquisition=acquisition,
                    findings=findings,
                    history=turns,
                    model=model,
                )

    return app


async def _receive_series(
    session: Session,
    dwi: UploadFile,
    bval: UploadFile | None,
    bvec: UploadFile | None,
    sidecar: UploadFile | None,
    config: ServerConfig,
    zip_limits: ZipLimits,
) -> analysis.Series:
    """Store the uploads in the session folder under fixed names, checking type and size."""
    folder = session.folder
    upload = folder / "upload"
    await run_in_threadpool(save_stream, dwi.file, upload, max_bytes=config.max_upload_bytes, what="the DWI file")
    kind = require_kind(upload, ("nifti", "nifti_gz", "zip"), what="the DWI file")
    if kind == "zip":
        if bval or bvec:
            raise UploadRejected("send bval/bvec with a NIfTI, not with a zip (they come from the DICOM)", status=400)
        return await run_in_threadpool(analysis.series_from_zip, upload, folder, limits=zip_limits)
    if bval is None or bvec is None:
        raise UploadRejected("a NIfTI upload needs its .bval and .bvec files", status=400)
    image = folder / analysis.VOLUME_NAMES[kind]
    upload.rename(image)
    paths = {}
    for name, part in (("volume.bval", bval), ("volume.bvec", bvec)):
        paths[name] = folder / name
        save_stream(part.file, paths[name], max_bytes=MAX_TEXT_BYTES, what=name.replace("volume", "the"))
        require_kind(paths[name], ("text",), what=name.replace("volume", "the"))
    clean_sidecar = None
    if sidecar is not None and sidecar.filename is not None:
        raw = folder / "upload.json"
        save_stream(sidecar.file, raw, max_bytes=MAX_TEXT_BYTES, what="the sidecar")
        require_kind(raw, ("text",), what="the sidecar")
        try:
            clean_sidecar = analysis.write_sidecar(raw, folder / "volume.json")
        finally:
            raw.unlink(missing_ok=True)
    return analysis.Series(image=image, bval=paths["volume.bval"], bvec=paths["volume.bvec"], sidecar=clean_sidecar)


def _session_or_404(store: SessionStore, sid: str) -> Session:
    session = store.get(sid)
    if session is None:
        raise StarletteHTTPException(404, "unknown or expired session: run the check again")
    return session


@contextlib.contextmanager
def _scratch(store: SessionStore):
    """A private folder for one request's files, deleted when the request ends."""
    folder = private_dir(prefix="req-", parent=store.root)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _parse_history(raw: str | None) -> list[tuple[str, str]] | None:
    if not raw:
        return None
    try:
        turns = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UploadRejected("history must be a JSON list of {question, answer}", status=400) from exc
    if not isinstance(turns, list) or not all(
        isinstance(t, dict) and isinstance(t.get("question"), str) and isinstance(t.get("answer"), str) for t in turns
    ):
        raise UploadRejected("history must be a JSON list of {question, answer}", status=400)
    return [(t["question"], t["answer"]) for t in turns[-10:]]


async def _sweep_forever(store: SessionStore, *, every_s: float = 60.0) -> None:
    while True:
        await asyncio.sleep(every_s)
        store.sweep()


def _install_error_handlers(app: FastAPI) -> None:
    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": " ".join(str(message).split())}, status_code=status)

    @app.exception_handler(UploadRejected)
    async def rejected(_: Request, exc: UploadRejected) -> JSONResponse:
        return error(exc.status, str(exc))

    @app.exception_handler(InputError)
    async def unusable(_: Request, exc: InputError) -> JSONResponse:
        return error(422, str(exc))

    @app.exception_handler(RequestValidationError)
    async def malformed(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return error(400, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def bug(_: Request, exc: Exception) -> JSONResponse:
        log.error("internal error (%s)", exc.__class__.__name__, exc_info=exc)
        return error(500, f"internal error ({exc.__class__.__name__}); the server keeps running")
