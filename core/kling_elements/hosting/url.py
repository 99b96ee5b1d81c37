"""The clip is already online: its URL is passed through (after the local checks)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from ..errors import ValidationError
from ..sigv4 import redact
from .base import ProgressCallback, check_clip

__all__ = ["UrlHost", "check_http_url"]


def check_http_url(url: str, what: str = "video URL") -> str:
    """``url`` if it is an absolute http(s) URL with a host, else a ``ValidationError``."""
    try:
        parts = urlsplit(url)
        ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        ok = False
    if ok and any(c.isspace() for c in url):
        raise ValidationError(
            f"{what} {redact(url)[:200]!r} contains spaces: percent-encode them (%20) so "
            "Kling can fetch it"
        )
    if not ok:
        raise ValidationError(
            f"{what} {redact(url)[:200]!r} is not an http(s) URL with a host: give a URL Kling "
            "can fetch, such as https://example.com/clip.mp4"
        )
    return url


class UrlHost:
    """Hands Kling a URL the user already has (uploaded by hand, a CDN, a share link).

    ``publish(path)`` still checks the local copy of the clip against Kling's rules when a
    path is given, so a clip Kling would refuse is caught before anything is sent.
    """

    def __init__(self, url: str) -> None:
        self._url = check_http_url(url)

    @property
    def identity(self) -> str:
        return "url"

    def publish(self, path: str | os.PathLike | None = None,
                on_progress: ProgressCallback | None = None) -> str:
        if path is not None:
            check_clip(path)
        return self._url

    def __repr__(self) -> str:
        return f"UrlHost({redact(self._url)!r})"
