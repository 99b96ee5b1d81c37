"""Downloading what a request points to (videos, reference images): loopback only.

The sandbox is offline by design. A URL is checked *before* any connection and without any
DNS lookup: its host must literally be ``localhost`` or a loopback IP (127.0.0.0/8, ::1).
Redirects are not followed (they could lead elsewhere), proxies from the environment are
ignored, and the body is streamed to disk under a size cap.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import httpx

from .config import ApiError

__all__ = ["MAX_VIDEO_BYTES", "download", "loopback_url", "url_suffix"]

MAX_VIDEO_BYTES = 600 * 1024 * 1024
_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
_CONTENT_SUFFIXES = {
    "video/mp4": ".mp4", "video/quicktime": ".mov", "image/jpeg": ".jpg", "image/png": ".png",
}


def loopback_url(field: str, value: object) -> str:
    """``value`` if it is an http(s) URL on a loopback host, else 1201 naming ``field``."""
    if not isinstance(value, str) or not value:
        raise ApiError(1201, f"{field} must be a non-empty URL string")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        _ = parts.port  # raises on a malformed port
        # The check must judge the host the download will connect to: where httpx (the
        # fetcher) reads another host than urlsplit (backslashes, '@' tricks), refuse.
        fetched_host = httpx.URL(value).host
    except (ValueError, httpx.InvalidURL):
        raise ApiError(1201, f"{field} {value[:100]!r} is not a valid URL") from None
    if host is not None and fetched_host.strip("[]").lower() != host.lower():
        raise ApiError(1201, f"{field} {value[:100]!r} is ambiguous about its host")
    if parts.scheme.lower() not in ("http", "https"):
        raise ApiError(1201, f"{field} {value[:100]!r} is not an http(s) URL")
    if not host:
        raise ApiError(1201, f"{field} {value[:100]!r} has no host")
    loopback = host == "localhost"
    if not loopback:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
    if not loopback:
        raise ApiError(
            1201,
            f"{field} host {host!r} is not loopback: the offline sandbox only downloads from "
            "localhost, 127.0.0.0/8 or ::1 (upload the file with POST /sandbox/uploads)",
        )
    return value


def url_suffix(url: str, content_type: str | None = None) -> str:
    """The file extension a download should keep (from the URL path, else the media type)."""
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    if suffix and len(suffix) <= 8 and suffix[1:].isalnum():
        return suffix
    media = (content_type or "").split(";")[0].strip().lower()
    return _CONTENT_SUFFIXES.get(media, "")


def download(url: str, dest: Path, *, field: str, max_bytes: int) -> str | None:
    """Stream ``url`` (already checked by :func:`loopback_url`) into ``dest``.

    Returns the response's Content-Type. Any failure (HTTP error, connection error, over
    ``max_bytes``) is a 1201 naming ``field``; ``dest`` is removed on failure.
    """
    try:
        with httpx.Client(timeout=_TIMEOUT, follow_redirects=False, trust_env=False) as client, \
                client.stream("GET", url) as response:
            if response.status_code != 200:
                raise ApiError(
                    1201, f"{field}: downloading it answered HTTP {response.status_code}"
                )
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise ApiError(1201, f"{field}: the file is over {max_bytes // 2**20} MB")
            total = 0
            with open(dest, "wb") as out:
                for chunk in response.iter_bytes(256 * 1024):
                    total += len(chunk)
                    if total > max_bytes:
                        raise ApiError(1201, f"{field}: the file is over {max_bytes // 2**20} MB")
                    out.write(chunk)
            return response.headers.get("content-type")
    except httpx.HTTPError as exc:
        with contextlib.suppress(OSError):
            os.unlink(dest)
        raise ApiError(
            1201, f"{field}: could not download it ({exc.__class__.__name__}: {exc})"
        ) from None
    except ApiError:
        with contextlib.suppress(OSError):
            os.unlink(dest)
        raise
