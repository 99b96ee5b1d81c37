"""Streaming, resumable, atomic downloads of result files.

Guarantees: the destination path either does not change or holds the complete file (the
bytes go to ``<dest>.part`` and are renamed only when their count matches what the server
announced); memory use is constant (fixed-size chunks); a broken connection (or a 429 or
5xx answer, which a CDN gives in passing) resumes with
``Range`` + ``If-Range`` from the bytes already on disk, also across processes (a rerun
finds the ``.part`` file); a server that ignores the range (plain 200) or a changed file
(``If-Range`` mismatch) restarts from zero instead of splicing two versions together.
Result URLs are public CDN links, so no Kling credentials are ever sent with them.

Nothing is written outside the destination's folder, and nothing is replaced silently: only
``dest``, ``<dest>.part`` and ``<dest>.part.etag`` are ever written (no name comes from the
server), none of them through a symbolic link, and an existing ``dest`` is replaced only with
``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from .errors import ConnectionFailed, KlingError, ServerError, ValidationError
from .retry import RetryPolicy, backoff

__all__ = ["ProgressCallback", "download"]

ProgressCallback = Callable[[int, "int | None"], None]
CHUNK_BYTES = 1 << 16
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class _Restart(Exception):
    """The partial file cannot be continued; start over from byte 0."""


class _Busy(Exception):
    """A 429 or 5xx from the file server: passing trouble, retried like a broken connection."""

    def __init__(self, status: int, headers: httpx.Headers | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers


def _validator_path(part: Path) -> Path:
    return part.with_name(part.name + ".etag")


_MAX_REDIRECTS = 10
_REDIRECTS = (301, 302, 303, 307, 308)


@contextlib.contextmanager
def _get(http: httpx.Client, url: str, headers: dict[str, str]) -> Iterator[httpx.Response]:
    """GET ``url`` following redirects here, so that every hop is checked to be http(s)
    whatever transport the client has (a mock or custom transport would fetch any scheme)."""
    for _ in range(_MAX_REDIRECTS + 1):
        with http.stream("GET", url, headers=headers, follow_redirects=False) as response:
            location = response.headers.get("location")
            if response.status_code not in _REDIRECTS or not location:
                yield response
                return
            target = response.url.join(location)
            if target.scheme not in ("http", "https"):
                raise ValidationError(
                    f"download URL {url!r} cannot be used: it redirects to "
                    f"{str(target)[:100]!r}, which is not an http(s) URL"
                )
            url = str(target)
    raise KlingError(
        f"the download redirects more than {_MAX_REDIRECTS} times: query the task for a "
        "fresh URL"
    )


def _refuse_link(path: Path) -> None:
    """A planted symlink (or non-file) at one of our names could send the bytes elsewhere."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ValidationError(
            f"{path} is a symbolic link or not a regular file; the download will not write "
            "through it (it could point outside the folder): remove it and try again"
        )


def _open_nofollow(path: Path, *, append: bool):
    """``open(path, "ab"/"wb")`` that fails on a symlink instead of following it."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError:
        _refuse_link(path)
        raise
    return os.fdopen(fd, "ab" if append else "wb")


def _check_target(dest: Path, overwrite: bool) -> None:
    """Refuse, before any request, a destination that is a folder or would be replaced."""
    if dest.is_dir():
        raise ValidationError(
            f"download target {dest} is a folder: give the file name to write inside it"
        )
    if not overwrite and os.path.lexists(dest):
        raise ValidationError(
            f"download target {dest} already exists and would be replaced: choose another "
            "name, or pass overwrite=True (the CLI's --force) to replace it"
        )
    part = dest.with_name(dest.name + ".part")
    _refuse_link(part)
    _refuse_link(_validator_path(part))


def _move_into_place(part: Path, dest: Path, overwrite: bool) -> None:
    """Rename the complete ``part`` to ``dest``; without ``overwrite`` never over a file that
    appeared meanwhile (then ``part`` stays, complete, for a later call)."""
    if overwrite:
        os.replace(part, dest)
        return
    exists = ValidationError(
        f"download target {dest} appeared while downloading; the complete file is kept as "
        f"{part.name}: remove {dest.name} (or pass overwrite=True / --force) and run it again"
    )
    try:
        os.link(part, dest)  # atomic and never replaces an existing name
    except FileExistsError:
        raise exists from None
    except OSError:  # no hard links on this file system
        if os.path.lexists(dest):
            raise exists from None
        os.replace(part, dest)
    else:
        part.unlink()


def _already_complete(response: httpx.Response, offset: int) -> bool:
    """A 416 for ``bytes=offset-`` whose ``Content-Range: bytes */N`` says N == offset."""
    match = re.fullmatch(r"bytes \*/(\d+)", response.headers.get("content-range", ""))
    return bool(match) and int(match.group(1)) == offset


def _expected_total(response: httpx.Response, offset: int) -> int | None:
    if response.status_code == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", ""))
        if not match or int(match.group(1)) != offset:
            raise _Restart
        return None if match.group(3) == "*" else int(match.group(3))
    length = response.headers.get("content-length")
    return int(length) if length and length.isdigit() else None


def _fetch_once(
    http: httpx.Client, url: str, part: Path, on_progress: ProgressCallback | None
) -> int | None:
    """Append what the server sends to ``part``; return the announced total size."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"}
    validator = _validator_path(part)
    if offset:
        headers["Range"] = f"bytes={offset}-"
        _refuse_link(validator)
        if validator.exists():
            headers["If-Range"] = validator.read_text().strip()
    with _get(http, url, headers) as response:
        if response.status_code == 416:
            if _already_complete(response, offset):
                return offset
            raise _Restart
        if response.status_code == 429 or response.status_code >= 500:
            raise _Busy(response.status_code, response.headers)
        if response.status_code not in (200, 206):
            raise KlingError(
                f"download of the result failed with HTTP {response.status_code}: the link may "
                "have expired (results are kept 30 days); query the task for a fresh URL",
                http_status=response.status_code,
            )
        if response.status_code == 200 and offset:
            offset = 0
        total = _expected_total(response, offset)
        etag = response.headers.get("etag")
        if etag and offset == 0:
            with _open_nofollow(validator, append=False) as handle:
                handle.write(etag.encode("latin-1"))
        with _open_nofollow(part, append=bool(offset)) as sink:
            done = offset
            # As they arrive (each at most CHUNK_BYTES, httpcore's read size): a chunker would
            # hold back up to a chunk of bytes already received, lost when the connection dies.
            for chunk in response.iter_bytes():
                sink.write(chunk)
                done += len(chunk)
                if on_progress:
                    on_progress(done, total)
            sink.flush()
            os.fsync(sink.fileno())
    return total


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    overwrite: bool = False,
    on_progress: ProgressCallback | None = None,
    http: httpx.Client | None = None,
    max_retries: int = 4,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> Path:
    """Download ``url`` to ``dest`` atomically, resuming across broken connections.

    ``on_progress(bytes_done, total_or_None)`` is called after each chunk. Raises
    :class:`ConnectionFailed` when the retries run out (the ``.part`` file stays, so a
    later call resumes) and :class:`KlingError` when the server refuses the file.
    :class:`ValidationError`, before any request, for a URL that is not http(s), a ``dest``
    that is a folder, exists (unless ``overwrite``) or whose ``.part`` is a symbolic link.
    """
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        raise ValidationError(
            f"download URL {str(url)[:100]!r} is not an http(s) URL: use the task's result URL"
        )
    dest = Path(dest)
    _check_target(dest, overwrite)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    own_client = http is None
    client = http or httpx.Client(follow_redirects=True, timeout=httpx.Timeout(30.0))
    # ``backoff`` is looked up at each wait: a caller (a test) may replace this module's name.
    retry = RetryPolicy(max_retries=max_retries, sleep=sleep, rng=rng,
                        schedule=lambda attempt, rng: backoff(attempt, rng))
    try:
        failures = 0
        while True:
            busy_headers = None
            try:
                total = _fetch_once(client, url, part, on_progress)
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                # A URL nothing can be fetched from: retrying cannot help.
                raise ValidationError(f"download URL {url!r} cannot be used: {exc}") from None
            except _Restart:
                part.unlink(missing_ok=True)
                _validator_path(part).unlink(missing_ok=True)
                failures += 1
            except _Busy as busy:
                failures += 1
                busy_headers = busy.headers
                if failures > max_retries:
                    raise ServerError(
                        f"the file server answered HTTP {busy.status} {failures} times; run it "
                        "again later to resume from "
                        f"{part.stat().st_size if part.exists() else 0} bytes",
                        http_status=busy.status,
                    ) from None
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                failures += 1
                if failures > max_retries:
                    raise ConnectionFailed(
                        f"download interrupted {failures} times ({exc.__class__.__name__}); "
                        f"run it again to resume from {part.stat().st_size if part.exists() else 0}"
                        " bytes"
                    ) from None
            else:
                size = part.stat().st_size
                if total is None or size == total:
                    _move_into_place(part, dest, overwrite)
                    _validator_path(part).unlink(missing_ok=True)
                    return dest
                failures += 1
                if size > total:
                    part.unlink(missing_ok=True)
            if not retry.pause(failures - 1, ConnectionFailed(f"download of {dest.name}"),
                               busy_headers):
                raise ConnectionFailed(
                    f"download of {dest.name} did not complete after {failures} attempts"
                )
    finally:
        if own_client:
            client.close()
