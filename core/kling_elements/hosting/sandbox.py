"""The local sandbox's ``POST /sandbox/uploads``: the offline stand-in for a real store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

import httpx

from ..errors import ConnectionFailed, ResponseFormatError, error_for
from .base import ProgressCallback, check_clip, video_content_type

__all__ = ["SandboxHost"]


class _ProgressReader:
    """A file wrapper that reports how much has been read (httpx streams multipart reads)."""

    def __init__(self, handle: IO[bytes], total: int, on_progress: ProgressCallback | None):
        self._handle = handle
        self._total = total
        self._done = 0
        self._on_progress = on_progress
        self.name = handle.name

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self._done += len(chunk)
        if self._on_progress and chunk:
            self._on_progress(self._done, self._total)
        return chunk


class SandboxHost:
    """Uploads to the sandbox's ``/sandbox/uploads`` with the client's own credentials.

    ``http`` is the Kling client's ``httpx.Client`` (its base URL and auth). The sandbox
    keeps uploads for its lifetime; there is nothing to clean up.
    """

    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    @property
    def identity(self) -> str:
        return f"sandbox {self._http.base_url}"

    def publish(self, path: str | os.PathLike, on_progress: ProgressCallback | None = None) -> str:
        path = Path(path)
        check_clip(path)
        total = path.stat().st_size
        try:
            with open(path, "rb") as handle:
                reader = _ProgressReader(handle, total, on_progress)
                response = self._http.post(
                    "/sandbox/uploads",
                    files={"file": (path.name, reader, video_content_type(path))},
                    timeout=httpx.Timeout(300.0),
                )
        except httpx.TransportError as exc:
            raise ConnectionFailed(
                f"upload to the sandbox failed ({exc.__class__.__name__}): is it running?"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ResponseFormatError(
                f"the sandbox upload answered HTTP {response.status_code} without JSON: is the "
                "base URL a kling-elements sandbox?", http_status=response.status_code,
            )
        if body.get("code") != 0:
            raise error_for(int(body.get("code") or 0) or 1200, str(body.get("message", "")),
                            http_status=response.status_code)
        url = (body.get("data") or {}).get("url")
        if not isinstance(url, str):
            raise ResponseFormatError("the sandbox upload answer has no data.url")
        return url
