"""ASGI middleware that refuses request bodies over a size limit with 413.

Starlette parses a multipart body completely (spooling files to disk) before a route
runs, so the limit must act earlier, on the byte stream: a declared ``Content-Length``
over the limit is refused at once, and a body that grows past it (chunked uploads, or a
lying header) is cut off as it arrives. Written here rather than taken from FastAPI's
``max_body_size`` because that option exists only in releases much newer than the
``fastapi>=0.110`` the project supports, and this answer names the option to raise.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _TooLarge(BaseException):
    """Raised from ``receive``; a BaseException so that the form parser's ``except Exception``
    (which turns every error into "400 error parsing the body") lets it through."""


class BodyLimit:
    """Wrap ``app`` so that no request body larger than ``max_bytes`` is read.

    Parameters
    ----------
    app
        The ASGI application.
    max_bytes
        Largest accepted body, bytes.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {"error": f"upload larger than the limit of {self.max_bytes / 2**20:.0f} MiB (lcid serve --max-upload-mb)"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
