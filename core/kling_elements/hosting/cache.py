"""Remembering published URLs on disk, so an unchanged clip is not uploaded twice.

The memory is a small JSON file keyed by the provider's identity (where it publishes; never
a secret) and the file's SHA-256. A URL is reused only while it is fresh: within the
cache's own ``ttl_s`` and, for a URL that expires by itself (a SigV4-presigned URL says
when in its query), while more than ``min_left_s`` of its life remains, which is more than
Kling needs to fetch it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..atomic import write_json_atomic
from ..sigv4 import url_expiry
from .base import Host, ProgressCallback, content_sha256

__all__ = ["CACHE_FILE", "MIN_URL_LIFE_LEFT_S", "CachingHost", "default_cache_dir", "url_usable"]

CACHE_FILE = "published-urls.json"
# Kling downloads the clip during init-selection, within seconds; ten minutes is a wide margin
# for a slow download, a retried request or a clock a little off.
MIN_URL_LIFE_LEFT_S = 600.0


def url_usable(url: str, *, now: float | None = None,
               min_left_s: float = MIN_URL_LIFE_LEFT_S) -> bool:
    """False if ``url`` is presigned and expires within ``min_left_s``; True otherwise."""
    expires = url_expiry(url)
    return expires is None or expires - (time.time() if now is None else now) > min_left_s


def default_cache_dir() -> Path:
    """The platform's per-user cache folder for this library (it is not created here).

    ``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux, ``~/Library/Caches`` on macOS,
    ``%LOCALAPPDATA%`` on Windows; each with a ``kling-elements`` folder.
    """
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = str(Path.home() / "Library" / "Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kling-elements"


class CachingHost:
    """Publishes each distinct file content once per provider while its URL is fresh.

    Entries are keyed by ``provider`` (default: the host's ``identity``, else its class
    name) and the file's SHA-256, so a renamed copy is not uploaded again and an edited
    file is. An entry expires ``ttl_s`` seconds after publishing (set it below the
    provider's URL lifetime when the URL does not say it), or earlier for a presigned URL
    (see :func:`url_usable`). The file is written atomically (temporary file + rename, mode
    0600: presigned URLs are in it), so a later process reuses the entries. Concurrent
    ``publish`` calls for the same content in one process upload once, and a process keeps
    the entries it wrote itself in memory too, so another process overwriting the file (each
    writes the entries it read plus its own) never makes it upload the same content again.
    Processes sharing the file may, in a race, each upload once; the file is never left
    half-written, and an unreadable file counts as empty.
    """

    def __init__(
        self,
        host: Host,
        cache_path: str | os.PathLike,
        ttl_s: float = 6 * 3600.0,
        *,
        provider: str | None = None,
        clock: Callable[[], float] = time.time,
        min_left_s: float = MIN_URL_LIFE_LEFT_S,
    ) -> None:
        self._host = host
        self._path = Path(cache_path)
        self._ttl_s = ttl_s
        self._provider = provider or getattr(host, "identity", None) or type(host).__name__
        self._clock = clock
        self._min_left_s = min_left_s
        self._lock = threading.Lock()
        self._publishing: dict[str, threading.Lock] = {}
        self._own: dict[str, dict[str, Any]] = {}
        self.uploads = 0

    @property
    def identity(self) -> str:
        return self._provider

    @property
    def inner(self) -> Host:
        """The provider that really publishes."""
        return self._host

    def _entries(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self._path.read_text())
        except (OSError, ValueError):
            return {}
        entries = data.get("entries") if isinstance(data, dict) else None
        return entries if isinstance(entries, dict) else {}

    def _fresh(self, entry: Any, now: float) -> bool:
        return (isinstance(entry, dict) and isinstance(entry.get("url"), str)
                and isinstance(entry.get("expires"), (int, float)) and entry["expires"] > now
                and url_usable(entry["url"], now=now, min_left_s=self._min_left_s))

    def _write(self, entries: dict[str, dict[str, Any]]) -> None:
        write_json_atomic(self._path, {"version": 1, "entries": entries})

    def _remember(self, key: str, url: str) -> None:
        now = self._clock()
        with self._lock:
            entries = {k: v for k, v in self._entries().items() if self._fresh(v, now)}
            entries[key] = {"url": url, "published": now, "expires": now + self._ttl_s}
            self._own[key] = entries[key]
            self._write(entries)

    def publish(self, path: str | os.PathLike, on_progress: ProgressCallback | None = None) -> str:
        """The URL published earlier for this content if still fresh, else a new one."""
        path = Path(path)
        key = f"{self._provider}|{content_sha256(path)}"
        with self._lock:
            gate = self._publishing.setdefault(key, threading.Lock())
        with gate:
            now = self._clock()
            entry = self._own.get(key)
            if not self._fresh(entry, now):
                entry = self._entries().get(key)
            if self._fresh(entry, now):
                assert isinstance(entry, dict)
                return entry["url"]
            url = self._host.publish(path, on_progress=on_progress)
            with self._lock:
                self.uploads += 1
            self._remember(key, url)
            return url

    def forget(self, url: str) -> None:
        """Drop every entry for ``url`` (e.g. after deleting the object it points to)."""
        with self._lock:
            self._own = {k: v for k, v in self._own.items() if v.get("url") != url}
            entries = self._entries()
            kept = {k: v for k, v in entries.items()
                    if not (isinstance(v, dict) and v.get("url") == url)}
            if len(kept) != len(entries):
                self._write(kept)

    def cleanup(self, url_or_key: str) -> None:
        """Delete the published object (when the provider can) and forget its URL."""
        self.forget(url_or_key)
        cleanup = getattr(self._host, "cleanup", None)
        if cleanup is not None:
            cleanup(url_or_key)
