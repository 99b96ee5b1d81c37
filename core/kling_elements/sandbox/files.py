"""Serving files like a CDN (ranges, ETag, If-Range), and dropping connections on purpose.

Clients must survive a connection that dies without an answer, or a body cut short. ASGI has
no "abort" message and uvicorn answers 500 when an app fails before responding, so the
sandbox runs uvicorn with :class:`SandboxH11Protocol`, which hands the connection's transport
to the app in ``scope["extensions"]``; :func:`abort` closes it (flushing whatever was already
sent) and waits until uvicorn has noticed, so nothing else is written. Under any other server
:func:`abort` raises, which is at worst a 500.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import re
from email.utils import formatdate
from pathlib import Path

import anyio
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["TRANSPORT_KEY", "FileSender", "SandboxH11Protocol", "abort"]

TRANSPORT_KEY = "kling_sandbox.transport"
CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class SandboxH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, exposing the transport to the app so it can drop connections."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        app = self.app

        async def with_transport(scope: Scope, receive: Receive, send: Send) -> None:
            extensions = dict(scope.get("extensions") or {})
            extensions[TRANSPORT_KEY] = transport
            scope["extensions"] = extensions
            await app(scope, receive, send)

        self.app = with_transport


async def abort(scope: Scope, receive: Receive) -> None:
    """Close the connection now: the client sees a reset/EOF, never an HTTP answer (or the
    rest of a started one). Returns once the server saw the disconnect."""
    transport = (scope.get("extensions") or {}).get(TRANSPORT_KEY)
    if transport is None:
        raise RuntimeError("cannot drop the connection: run the sandbox with SandboxH11Protocol")
    transport.close()
    with anyio.move_on_after(2.0):
        while (await receive())["type"] != "http.disconnect":
            pass


def _etag(stat: os.stat_result) -> str:
    return f'"{stat.st_ino:x}-{stat.st_size:x}-{stat.st_mtime_ns:x}"'


def _parse_range(header: str, size: int) -> tuple[int, int] | bool | None:
    """``(start, end)`` inclusive; ``None`` to ignore the header; ``False`` if unsatisfiable."""
    match = _RANGE.match(header.strip().replace(" ", ""))
    if not match or match.groups() == ("", ""):
        return None  # malformed or multi-range: serve the whole file (RFC 9110 allows it)
    first, last = match.groups()
    if first == "":  # suffix range: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            return False
        return max(0, size - length), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if last != "" and int(last) < start:
        return None
    if start >= size:
        return False
    return start, end


class FileSender:
    """ASGI response for one file: 200, 206 (single range), 416, HEAD; optional truncation.

    ``truncate`` (a fraction) sends the declared Content-Length's headers but only that
    fraction of the body, then aborts the connection.
    """

    def __init__(
        self, path: Path, *, request_id: str, truncate: float | None = None
    ) -> None:
        self.path = path
        self.request_id = request_id
        self.truncate = truncate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stat = await anyio.to_thread.run_sync(os.stat, self.path)
        size = stat.st_size
        etag = _etag(stat)
        last_modified = formatdate(stat.st_mtime, usegmt=True)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        status, start, end = 200, 0, size - 1
        wanted = headers.get("range")
        if_range = headers.get("if-range")
        if wanted and (if_range is None or if_range.strip() in (etag, last_modified)):
            parsed = _parse_range(wanted, size)
            if parsed is False:
                await self._send_head(send, 416, {"content-range": f"bytes */{size}"}, 0, etag)
                await send({"type": "http.response.body", "body": b""})
                return
            if parsed is not None:
                status, (start, end) = 206, parsed
        length = max(0, end - start + 1)
        extra = {"last-modified": last_modified}
        if status == 206:
            extra["content-range"] = f"bytes {start}-{end}/{size}"
        await self._send_head(send, status, extra, length, etag)
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        limit = length if self.truncate is None else int(length * self.truncate)
        gone = False
        async with anyio.create_task_group() as group:

            async def watch_disconnect() -> None:
                nonlocal gone
                while (await receive())["type"] != "http.disconnect":
                    pass
                gone = True
                group.cancel_scope.cancel()  # the client left: stop reading the file

            group.start_soon(watch_disconnect)
            await self._send_body(send, start, limit)
            group.cancel_scope.cancel()
        if gone:
            return
        if self.truncate is not None:
            await abort(scope, receive)
            return
        await send({"type": "http.response.body", "body": b""})

    async def _send_body(self, send: Send, start: int, limit: int) -> None:
        sent = 0
        async with await anyio.open_file(self.path, "rb") as handle:
            await handle.seek(start)
            while sent < limit:
                chunk = await handle.read(min(CHUNK, limit - sent))
                if not chunk:
                    break
                sent += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def _send_head(
        self, send: Send, status: int, extra: dict[str, str], length: int, etag: str
    ) -> None:
        content_type = mimetypes.guess_type(self.path.name)[0] or "application/octet-stream"
        headers = {
            "content-type": content_type,
            "content-length": str(length),
            "accept-ranges": "bytes",
            "etag": etag,
            "cache-control": "private, max-age=2592000",
            "x-request-id": self.request_id,
            **extra,
        }
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        })
