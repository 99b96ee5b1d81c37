"""From :class:`HostingSettings` to a working :class:`Host`: the one place that maps kinds."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx

from ..errors import ValidationError
from ..sigv4 import Credentials
from .base import Host
from .cache import CACHE_FILE, CachingHost
from .command import CommandHost
from .s3 import S3Host
from .sandbox import SandboxHost
from .settings import HostingSettings
from .url import UrlHost

__all__ = ["make_host"]


def make_host(
    settings: HostingSettings,
    *,
    http: httpx.Client | None = None,
    cache_dir: str | os.PathLike | None = None,
    transport: httpx.BaseTransport | None = None,
    before_request: Callable[[httpx.Request], None] | None = None,
) -> Host:
    """The provider ``settings`` describe, validated before anything is sent.

    ``http`` is the Kling client's ``httpx.Client`` (the sandbox provider uploads through
    it). With ``cache_dir`` (``~`` is expanded), published URLs are remembered in
    ``cache_dir/published-urls.json`` (see :class:`CachingHost`) so an unchanged clip is not
    uploaded twice while its URL is fresh; the ``url`` kind is never cached (nothing is
    uploaded), and caching the sandbox across runs is rarely useful (its URLs end with it).
    ``transport`` replaces the S3 provider's HTTP transport (tests); ``before_request`` is
    called before each of its requests and refuses one by raising (the sandbox provider
    sends through ``http``, which has its own). Raises
    ``ValidationError`` listing every problem of the settings. Building a host does no I/O,
    so it is safe on a UI thread; ``publish`` is not (it blocks on disk and network).
    """
    settings.validate()
    host: Host
    if settings.kind == "sandbox":
        if http is None:
            raise ValidationError("the sandbox hosting choice uploads through the Kling "
                                  "client's connection: pass http=client.http")
        host = SandboxHost(http)
    elif settings.kind == "url":
        return UrlHost(settings.url)
    elif settings.kind == "command":
        host = CommandHost(settings.command, float(settings.command_timeout_s))
    else:
        host = S3Host(
            bucket=settings.s3_bucket.strip(), region=settings.s3_region.strip(),
            endpoint=settings.s3_endpoint.strip(), prefix=settings.s3_prefix.strip(),
            addressing=settings.s3_addressing, expires_s=int(settings.s3_expires_s),
            credentials=Credentials(settings.s3_access_key_id.strip(),
                                    settings.s3_secret_access_key.strip(),
                                    settings.s3_session_token.strip()),
            transport=transport, before_request=before_request,
        )
    if cache_dir is None:
        return host
    return CachingHost(host, Path(cache_dir).expanduser() / CACHE_FILE)
