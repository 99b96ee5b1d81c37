"""What every provider shares: the ``Host`` protocol, the local clip check, content hashes.

A provider's contract: ``publish(path, on_progress=None)`` returns an http(s) URL from
which Kling can download the clip, or raises (a ``ValidationError`` for a clip or a setting
that cannot work, a :class:`HostingError` or ``ConnectionFailed`` for the store) without
having told Kling anything. ``on_progress(done, total)`` is called from the publishing
thread. A provider may also offer ``cleanup(url_or_key)`` (delete what it published) and an
``identity`` (a string naming where it publishes, without any secret) for caches.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..errors import KlingError

__all__ = [
    "Host",
    "HostingError",
    "ProgressCallback",
    "check_clip",
    "content_sha256",
    "file_sha256",
    "video_content_type",
]

ProgressCallback = Callable[[int, "int | None"], None]


@runtime_checkable
class Host(Protocol):
    def publish(self, path: str | os.PathLike, on_progress: ProgressCallback | None = None) -> str:
        """Return an http(s) URL from which Kling can download ``path``."""
        ...


class HostingError(KlingError):
    """The store refused or failed the upload; the message names the store and the fix.

    ``provider`` is the provider's kind (``"s3"``, ``"command"``...), ``store_code`` the
    store's own error code when it gave one (e.g. ``"NoSuchBucket"``). Like every error of
    this library, it never carries a secret, a signature or a signed URL.
    """

    def __init__(self, message: str, *, provider: str, store_code: str | None = None,
                 http_status: int | None = None) -> None:
        super().__init__(message, http_status=http_status)
        self.provider = provider
        self.store_code = store_code


def check_clip(path: str | os.PathLike) -> None:
    """Refuse a clip that breaks Kling's rules, listing every problem; skip without PyAV."""
    try:
        from ..media import probe
        info = probe(path)
    except ImportError:
        return
    from ..validate import video
    video(info)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


_digests: OrderedDict[tuple[str, int, int], str] = OrderedDict()
_digests_lock = threading.Lock()


def content_sha256(path: str | os.PathLike) -> str:
    """:func:`file_sha256`, remembered per (path, size, mtime) in this process.

    The cache and the S3 upload (which signs the body's hash) both need the hash of the
    same file; a clip of a few hundred MB is then read once, not twice. An edited file has
    a new mtime or size and is hashed again.
    """
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _digests_lock:
        known = _digests.get(key)
    if known is None:
        known = file_sha256(path)
        with _digests_lock:
            _digests[key] = known
            while len(_digests) > 256:
                _digests.popitem(last=False)
    return known


def video_content_type(path: str | os.PathLike) -> str:
    """The media type a store should serve the clip with (Kling accepts .mp4 and .mov)."""
    return "video/quicktime" if Path(path).suffix.lower() == ".mov" else "video/mp4"
