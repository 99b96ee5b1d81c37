"""How a local clip becomes a URL Kling can fetch.

``init-selection`` takes a ``video_url`` that Kling itself downloads. A provider has one
method, ``publish(path, on_progress=None) -> url`` (and ``cleanup(url_or_key)`` where it
can delete what it published). Every provider checks the clip against Kling's rules first
(when PyAV is installed), so nobody uploads a file Kling will refuse.

Providers: ``sandbox`` (the local sandbox's ``/sandbox/uploads``), ``s3`` (any
S3-compatible store; a presigned GET URL keeps the bucket private), ``command`` (a user's
upload command prints the URL) and ``url`` (the user already has one). Choose one with
:class:`HostingSettings` and :func:`make_host`. :class:`CachingHost` wraps any provider so an
unchanged file is published once while its URL is fresh, remembered in a JSON file.
"""

from __future__ import annotations

from .base import Host, HostingError, ProgressCallback, check_clip, content_sha256, file_sha256
from .cache import CachingHost, default_cache_dir, url_usable
from .command import CommandHost
from .factory import make_host
from .s3 import S3Host
from .sandbox import SandboxHost
from .settings import KINDS, HostingSettings
from .url import UrlHost

__all__ = [
    "KINDS",
    "CachingHost",
    "CommandHost",
    "Host",
    "HostingError",
    "HostingSettings",
    "ProgressCallback",
    "S3Host",
    "SandboxHost",
    "UrlHost",
    "check_clip",
    "content_sha256",
    "default_cache_dir",
    "file_sha256",
    "make_host",
    "url_usable",
]
