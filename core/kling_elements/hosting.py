"""How a local clip becomes a URL Kling can fetch.

``init-selection`` takes a ``video_url`` that Kling itself downloads. A provider has one
method, ``publish(path, on_progress=None) -> url``. Every provider checks the clip against
Kling's rules first (when PyAV is installed), so nobody uploads a file Kling will refuse.

Providers here: ``sandbox`` (the local sandbox's ``/sandbox/uploads``) and ``url`` (the user
already has one). S3-compatible stores and user commands are planned (see the issues).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

import httpx

from .errors import ConnectionFailed, ResponseFormatError, ValidationError, error_for

__all__ = ["Host", "SandboxHost", "UrlHost", "check_clip"]

ProgressCallback = Callable[[int, "int | None"], None]


class Host(Protocol):
    def publish(self, path: str | os.PathLike, on_progress: ProgressCallback | None = None) -> str:
        """Return an http(s) URL from which Kling can download ``path``."""
        ...


def check_clip(path: str | os.PathLike) -> None:
    """Refuse a clip that breaks Kling's rules, listing every problem; skip without PyAV."""
    try:
        from .media import probe
        info = probe(path)
    except ImportError:
        return
    from .validate import video
    video(info)


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
    """Uploads to the sandbox's ``/sandbox/uploads`` with the client's own credentials."""

    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    def publish(self, path: str | os.PathLike, on_progress: ProgressCallback | None = None) -> str:
        path = Path(path)
        check_clip(path)
        total = path.stat().st_size
        try:
            with open(path, "rb") as handle:
                reader = _ProgressReader(handle, total, on_progress)
                response = self._http.post(
                    "/sandbox/uploads", files={"file": (path.name, reader, "video/mp4")},
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


class UrlHost:
    """The clip is already online: pass its URL through after checking it is http(s)."""

    def __init__(self, url: str) -> None:
        if not url.lower().startswith(("http://", "https://")):
            raise ValidationError(f"video URL {url!r} is not http(s): give a URL Kling can fetch")
        self._url = url

    def publish(self, path: str | os.PathLike | None = None,
                on_progress: ProgressCallback | None = None) -> str:
        return self._url
