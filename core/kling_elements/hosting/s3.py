"""Any S3-compatible store (AWS S3, Cloudflare R2, MinIO, Backblaze B2, Aliyun OSS...).

The clip is uploaded with one SigV4-signed ``PUT`` (streamed from disk, with progress; the
body's SHA-256 is signed, so the store refuses a file that changed mid-upload) under a
content-addressed key ``<prefix><sha256[:16]>/<file name>``, and Kling is handed a presigned
``GET`` URL that expires after ``expires_s`` (the bucket stays private). No boto3: SigV4 is
:mod:`kling_elements.sigv4` plus httpx, small enough to ship inside Blender.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from ..errors import ConnectionFailed, ValidationError
from ..retry import RetryPolicy
from ..sigv4 import EMPTY_SHA256, Credentials, presign_url, quote_path, redact, sign_headers
from .base import HostingError, ProgressCallback, check_clip, content_sha256, video_content_type
from .s3_errors import RETRYABLE_CODES, parse_error, s3_error

__all__ = ["MAX_PUT_BYTES", "S3Host", "default_endpoint", "resolve_addressing"]

log = logging.getLogger("kling_elements.hosting")

MAX_PUT_BYTES = 5 * 1024**3  # S3's limit for a single PUT
_ATTEMPTS = 3
_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
_DNS_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_VIRTUAL_BY_DEFAULT = (".amazonaws.com", ".amazonaws.com.cn", ".aliyuncs.com")


def default_endpoint(region: str) -> str:
    """AWS's S3 endpoint for ``region`` (what botocore uses when no endpoint is given)."""
    if region == "us-east-1":
        return "https://s3.amazonaws.com"
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://s3.{region}.{suffix}"


def _is_ip_or_local(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def resolve_addressing(addressing: str, endpoint: str, bucket: str) -> str:
    """``"path"`` or ``"virtual"``: how the bucket goes in an object's URL.

    ``auto`` picks virtual-host style where the store expects it (AWS, Aliyun OSS) and the
    bucket name is a DNS label without dots (dots break TLS wildcard certificates), and
    path style elsewhere (MinIO, R2, B2 and loopback servers accept it without DNS setup).
    """
    if addressing in ("path", "virtual"):
        return addressing
    host = (urlsplit(endpoint).hostname or "").lower()
    if (_DNS_BUCKET.fullmatch(bucket) and not _is_ip_or_local(host)
            and host.endswith(_VIRTUAL_BY_DEFAULT)):
        return "virtual"
    return "path"


def _read_chunks(path: Path, size: int, on_progress: ProgressCallback | None) -> Iterator[bytes]:
    done = 0
    if on_progress:
        on_progress(0, size)
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            done += len(chunk)
            yield chunk
            if on_progress:
                on_progress(done, size)


class S3Host:
    """Publishes to an S3-compatible bucket and returns a presigned GET URL.

    ``endpoint`` is the store's base URL (empty: AWS for ``region``); ``addressing`` is
    ``"path"``, ``"virtual"`` or ``"auto"`` (see :func:`resolve_addressing`). The same
    content always lands on the same key, so publishing it again overwrites it with
    identical bytes. Transient failures (connection errors, 5xx, ``SlowDown``) are retried
    twice; every other refusal is a :class:`HostingError` naming the bucket, the endpoint and
    the fix. The repr, the logs and the errors never contain the secret, the session token
    or a signature. ``before_request`` is called before every request, as in ``Client``:
    if it raises, nothing is sent and the exception propagates unchanged.
    """

    def __init__(
        self,
        *,
        bucket: str,
        credentials: Credentials,
        region: str = "us-east-1",
        endpoint: str = "",
        prefix: str = "",
        addressing: str = "auto",
        expires_s: int = 3600,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        before_request: Callable[[httpx.Request], None] | None = None,
    ) -> None:
        self._bucket = bucket
        self._credentials = credentials
        self._region = region or "us-east-1"
        self._endpoint = (endpoint or default_endpoint(self._region)).rstrip("/")
        self._prefix = prefix.lstrip("/")
        if self._prefix and not self._prefix.endswith("/"):
            self._prefix += "/"
        self._addressing = resolve_addressing(addressing, self._endpoint, bucket)
        self._expires_s = int(expires_s)
        self._transport = transport
        self._hooks = {"request": [before_request]} if before_request is not None else None
        self._clock = clock
        self._sleep = sleep
        self._secrets = (credentials.secret_access_key, credentials.session_token)

    def __repr__(self) -> str:
        return (f"S3Host(endpoint={self._endpoint!r}, bucket={self._bucket!r}, "
                f"prefix={self._prefix!r}, addressing={self._addressing!r}, "
                f"access_key_id={self._credentials.access_key_id!r})")

    @property
    def identity(self) -> str:
        """Where this host publishes; the access key id only as a short hash."""
        key = hashlib.sha256(self._credentials.access_key_id.encode()).hexdigest()[:12]
        return f"s3 {self._endpoint} {self._bucket}/{self._prefix} {self._addressing} key:{key}"

    def object_key(self, path: str | os.PathLike, digest: str) -> str:
        """``<prefix><sha256[:16]>/<name>``: one key per content, the name kept for humans."""
        return f"{self._prefix}{digest[:16]}/{Path(path).name}"

    def object_url(self, key: str) -> str:
        """The object's unsigned URL, encoded as it goes on the wire."""
        parts = urlsplit(self._endpoint)
        if self._addressing == "virtual":
            base = f"{parts.scheme}://{self._bucket}.{parts.netloc}"
            return f"{base}/{quote_path(key)}"
        return f"{self._endpoint}/{quote_path(self._bucket)}/{quote_path(key)}"

    def presign(self, key: str, method: str = "GET") -> str:
        """A URL that lets anyone ``method`` the object for ``expires_s`` seconds."""
        return presign_url(method, self.object_url(key), self._credentials, self._region,
                           expires_s=self._expires_s, now=self._clock())

    def _send(self, method: str, key: str, *, action: str,
              headers: dict[str, str] | None = None, payload_sha256: str | None = None,
              body: Callable[[], Iterator[bytes]] | None = None) -> httpx.Response:
        url = self.object_url(key)
        failure: HostingError | ConnectionFailed | None = None
        retry = RetryPolicy(max_retries=_ATTEMPTS - 1, sleep=self._sleep)
        attempt, retry_after = 0, None
        while True:
            if attempt and not retry.pause(attempt - 1, failure, retry_after):
                break
            attempt += 1
            retry_after = None
            signed = sign_headers(method, url, self._credentials, self._region,
                                  headers=headers, now=self._clock(),
                                  payload_sha256=payload_sha256 or EMPTY_SHA256)
            error_text = None
            try:
                with httpx.Client(transport=self._transport, timeout=_TIMEOUT,
                                  follow_redirects=False, event_hooks=self._hooks) as http:
                    response = http.request(method, url, headers=signed,
                                            content=body() if body else None)
            except httpx.HTTPError as exc:
                error_text = f"{exc.__class__.__name__}: {exc}"
            if error_text is not None:
                # Built outside the except block: the httpx error (whose request holds the
                # signed headers) is neither chained nor kept as context.
                failure = ConnectionFailed(redact(
                    f"S3 {action} to {self._endpoint} failed ({error_text[:300]}): check the "
                    "endpoint (s3_endpoint / AWS_ENDPOINT_URL) and the network", *self._secrets))
                continue
            if response.is_success:
                return response
            failure = s3_error(response.status_code, response.content, action=action,
                               bucket=self._bucket, endpoint=self._endpoint,
                               region=self._region, prefix=self._prefix,
                               secrets=self._secrets)
            code = parse_error(response.content).get("Code", "")
            if not (response.status_code >= 500 or code in RETRYABLE_CODES):
                break
            retry_after = response.headers
            log.debug("S3 %s of %s answered %s %s; retrying", action, key,
                      response.status_code, code)
        assert failure is not None
        raise failure

    def publish(self, path: str | os.PathLike, on_progress: ProgressCallback | None = None) -> str:
        """Upload ``path`` (after the local clip check) and return a presigned GET URL."""
        path = Path(path)
        check_clip(path)
        size = path.stat().st_size
        if size > MAX_PUT_BYTES:
            raise ValidationError(f"clip {path.name} is {size / 1024**3:.1f} GiB, over S3's "
                                  "single-upload limit of 5 GiB: make it smaller")
        digest = content_sha256(path)
        key = self.object_key(path, digest)
        log.debug("uploading %s (%d bytes) to %s/%s", path.name, size, self._bucket, key)
        self._send("PUT", key, action="upload", payload_sha256=digest,
                   headers={"Content-Length": str(size),
                            "Content-Type": video_content_type(path)},
                   body=lambda: _read_chunks(path, size, on_progress))
        return self.presign(key)

    def key_of(self, url_or_key: str) -> str:
        """The object key a URL of this bucket points to (a bare key is returned as is)."""
        if not url_or_key.lower().startswith(("http://", "https://")):
            return url_or_key
        path = unquote(urlsplit(url_or_key).path).lstrip("/")
        if self._addressing == "path":
            bucket, _, path = path.partition("/")
            if bucket != self._bucket:
                raise ValidationError(f"URL {redact(url_or_key)[:200]!r} is not in bucket "
                                      f"{self._bucket!r}: nothing to clean up there")
        return path

    def cleanup(self, url_or_key: str) -> None:
        """Delete a published object (by its URL or key); a missing object is no error."""
        key = self.key_of(url_or_key)
        try:
            self._send("DELETE", key, action="delete")
        except HostingError as exc:
            if exc.store_code != "NoSuchKey":
                raise
