"""How a local clip becomes a URL Kling can fetch.

``init-selection`` takes a ``video_url`` that Kling itself downloads. A provider has one
method, ``publish(path, on_progress=None) -> url``. Every provider checks the clip against
Kling's rules first (when PyAV is installed), so nobody uploads a file Kling will refuse.

Providers here: ``sandbox`` (the local sandbox's ``/sandbox/uploads``) and ``url`` (the user
already has one). S3-compatible stores and user commands are planned (see the issues).
``CachingHost`` wraps any provider so an unchanged file is published once while its URL is
fresh (the batch runner uses it: several shots on one plate share one upload).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

import httpx

from .errors import ConnectionFailed, ResponseFormatError, ValidationError, error_for

__all__ = ["CachingHost", "Host", "SandboxHost", "UrlHost", "check_clip", "file_sha256"]

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


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class CachingHost:
    """Publishes each distinct file content once per provider while its URL is fresh.

    Entries are keyed by ``provider`` and the file's SHA-256 (so a renamed copy is not
    uploaded again, and an edited file is), expire ``ttl_s`` seconds after publishing (set it
    below the provider's URL lifetime), and live in a small JSON file written atomically, so
    a later process reuses them. Concurrent ``publish`` calls for the same content in one
    process upload once. Processes sharing the file may, in a race, each upload and keep
    the last entry written; the file is never left half-written.
    """

    def __init__(
        self,
        host: Host,
        cache_path: str | os.PathLike,
        ttl_s: float = 6 * 3600.0,
        *,
        provider: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._host = host
        self._path = Path(cache_path)
        self._ttl_s = ttl_s
        self._provider = provider or type(host).__name__
        self._clock = clock
        self._lock = threading.Lock()
        self._publishing: dict[str, threading.Lock] = {}
        self._digests: dict[tuple[str, int, int], str] = {}
        self.uploads = 0

    def _digest(self, path: Path) -> str:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            known = self._digests.get(key)
        if known is None:
            known = file_sha256(path)
            with self._lock:
                self._digests[key] = known
        return known

    def _entries(self) -> dict[str, dict]:
        try:
            data = json.loads(self._path.read_text())
        except (OSError, ValueError):
            return {}
        entries = data.get("entries") if isinstance(data, dict) else None
        return entries if isinstance(entries, dict) else {}

    def _fresh_url(self, key: str) -> str | None:
        entry = self._entries().get(key)
        if (isinstance(entry, dict) and isinstance(entry.get("url"), str)
                and isinstance(entry.get("expires"), (int, float))
                and entry["expires"] > self._clock()):
            return entry["url"]
        return None

    def _remember(self, key: str, url: str) -> None:
        now = self._clock()
        with self._lock:
            entries = {k: v for k, v in self._entries().items()
                       if isinstance(v, dict) and isinstance(v.get("expires"), (int, float))
                       and v["expires"] > now}
            entries[key] = {"url": url, "expires": now + self._ttl_s}
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=self._path.name, suffix=".tmp",
                                       dir=self._path.parent)
            with os.fdopen(fd, "w") as handle:
                json.dump({"version": 1, "entries": entries}, handle, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self._path)

    def publish(self, path: str | os.PathLike, on_progress: ProgressCallback | None = None) -> str:
        path = Path(path)
        key = f"{self._provider}|{self._digest(path)}"
        with self._lock:
            gate = self._publishing.setdefault(key, threading.Lock())
        with gate:
            url = self._fresh_url(key)
            if url is None:
                url = self._host.publish(path, on_progress=on_progress)
                with self._lock:
                    self.uploads += 1
                self._remember(key, url)
            return url
