"""AWS Signature Version 4 for S3-compatible stores, with the standard library only.

Two ways to sign a request, both byte-for-byte what botocore produces for the same inputs
(the tests compare them): :func:`sign_headers` for a request we send ourselves (an
``Authorization`` header), :func:`presign_url` for a URL someone else fetches (the
signature in the query string, valid for ``expires_s``). S3 rules apply: the path is not
normalized and is encoded once, exactly as it goes on the wire.

What is guaranteed about secrets: the secret access key only ever enters an HMAC; it is in
no return value, no repr and no exception. A presigned URL carries a signature and (with
temporary credentials) the session token, so :func:`redact` exists for any text that might
quote one.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

__all__ = [
    "ALGORITHM",
    "EMPTY_SHA256",
    "MAX_EXPIRES_S",
    "UNSIGNED_PAYLOAD",
    "Credentials",
    "amz_date",
    "presign_url",
    "quote_path",
    "redact",
    "sign_headers",
    "url_expiry",
]

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_EXPIRES_S = 7 * 24 * 3600  # SigV4's own limit for a presigned URL
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Credentials:
    """An access key pair, plus the session token of temporary (STS) credentials.

    The repr shows the access key id only; the secret and the token are never printed.
    """

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(default="", repr=False)

    def __repr__(self) -> str:
        token = ", session_token=<set>" if self.session_token else ""
        return f"Credentials(access_key_id={self.access_key_id!r}, secret=<hidden>{token})"


def quote_path(path: str) -> str:
    """Percent-encode an object path for the wire and the signature (``/`` and ``~`` kept)."""
    return quote(path, safe="/~")


def _quote_param(text: str) -> str:
    return quote(text, safe="-_.~")


def amz_date(now: float) -> str:
    """``YYYYMMDDTHHMMSSZ`` (UTC) of an epoch time, as SigV4 writes it."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


def _host(url_parts) -> str:
    host = url_parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = url_parts.port
    if port is not None and port != _DEFAULT_PORTS.get(url_parts.scheme.lower()):
        host = f"{host}:{port}"
    return host


def _canonical_query(query: str) -> str:
    """The query as SigV4 signs it: ``key=value`` pairs (already encoded), sorted."""
    if not query:
        return ""
    pairs = [pair.partition("=")[::2] for pair in query.split("&")]
    return "&".join(f"{key}={value}" for key, value in sorted(pairs))


def _canonical_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    merged: dict[str, list[str]] = {}
    for name, value in headers.items():
        merged.setdefault(name.lower().strip(), []).append(" ".join(str(value).split()))
    names = sorted(merged)
    canonical = "".join(f"{name}:{','.join(merged[name])}\n" for name in names)
    return canonical, ";".join(names)


def _signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _signature(credentials: Credentials, stamp: str, region: str, service: str,
               canonical_request: str) -> str:
    scope = f"{stamp[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join((ALGORITHM, stamp, scope,
                         hashlib.sha256(canonical_request.encode()).hexdigest()))
    key = _signing_key(credentials.secret_access_key, stamp[:8], region, service)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def sign_headers(
    method: str,
    url: str,
    credentials: Credentials,
    region: str,
    *,
    headers: Mapping[str, str] | None = None,
    payload_sha256: str = UNSIGNED_PAYLOAD,
    now: float | None = None,
    service: str = "s3",
) -> dict[str, str]:
    """The headers to send with ``method url``: ``headers`` plus ``Host``, ``X-Amz-Date``,
    ``X-Amz-Content-SHA256``, the session token if any, and ``Authorization``.

    ``url`` must already be encoded as it goes on the wire (see :func:`quote_path`).
    Every header passed in is signed, so send exactly the returned set (an HTTP library may
    add unsigned ones such as ``User-Agent``). ``payload_sha256`` is the body's hex SHA-256,
    or ``UNSIGNED-PAYLOAD`` to leave the body out of the signature.
    """
    stamp = amz_date(time.time() if now is None else now)
    parts = urlsplit(url)
    out = dict(headers or {})
    if not any(name.lower() == "host" for name in out):
        out["Host"] = _host(parts)
    out["X-Amz-Date"] = stamp
    out["X-Amz-Content-SHA256"] = payload_sha256
    if credentials.session_token:
        out["X-Amz-Security-Token"] = credentials.session_token
    canonical, signed = _canonical_headers(out)
    request = "\n".join((method.upper(), parts.path or "/", _canonical_query(parts.query),
                         canonical, signed, payload_sha256))
    signature = _signature(credentials, stamp, region, service, request)
    out["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{stamp[:8]}/{region}/{service}"
        f"/aws4_request, SignedHeaders={signed}, Signature={signature}"
    )
    return out


def presign_url(
    method: str,
    url: str,
    credentials: Credentials,
    region: str,
    *,
    expires_s: int = 3600,
    now: float | None = None,
    service: str = "s3",
) -> str:
    """``url`` with a query-string signature that lets anyone ``method`` it for
    ``expires_s`` seconds (1 s to 7 days), signing only the ``host`` header.

    ``url`` must already be encoded as it goes on the wire; its own query parameters are
    kept in front of the signature's.
    """
    if not 1 <= expires_s <= MAX_EXPIRES_S:
        raise ValueError(f"expires_s {expires_s} is outside 1..{MAX_EXPIRES_S} s (SigV4's limit)")
    stamp = amz_date(time.time() if now is None else now)
    parts = urlsplit(url)
    auth = [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential",
         f"{credentials.access_key_id}/{stamp[:8]}/{region}/{service}/aws4_request"),
        ("X-Amz-Date", stamp),
        ("X-Amz-Expires", str(int(expires_s))),
        ("X-Amz-SignedHeaders", "host"),
    ]
    if credentials.session_token:
        auth.append(("X-Amz-Security-Token", credentials.session_token))
    own = [f"{_quote_param(k)}={_quote_param(v)}"
           for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    query = "&".join([*own, *(f"{_quote_param(k)}={_quote_param(v)}" for k, v in auth)])
    request = "\n".join((method.upper(), parts.path or "/", _canonical_query(query),
                         f"host:{_host(parts)}\n", "host", UNSIGNED_PAYLOAD))
    signature = _signature(credentials, stamp, region, service, request)
    return urlunsplit((parts.scheme, parts.netloc, parts.path,
                       f"{query}&X-Amz-Signature={signature}", ""))


def url_expiry(url: str) -> float | None:
    """When a SigV4-presigned URL stops working (epoch seconds), or ``None`` if ``url`` is
    not one (no ``X-Amz-Date`` + ``X-Amz-Expires``): such URLs are taken not to expire."""
    try:
        params = {k.lower(): v for k, v in parse_qsl(urlsplit(url).query)}
        date, expires = params.get("x-amz-date"), params.get("x-amz-expires")
        if not date or not expires:
            return None
        start = calendar.timegm(time.strptime(date, "%Y%m%dT%H%M%SZ"))
        return float(start + int(expires))
    except ValueError:
        return None


_SECRETS = re.compile(
    r"((?:X-Amz-Signature|X-Amz-Security-Token|X-Amz-Credential|AWSAccessKeyId|Signature"
    r"|Credential)=)[^&\s,\"'<>]*",
    re.IGNORECASE,
)


def redact(text: str, *secrets: str) -> str:
    """``text`` with every signature, credential and session token in it replaced by
    ``***``: safe to show for a URL, an error or an exception message that may quote one.

    ``secrets`` are literal values (a secret key, a token) masked wherever they appear.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _SECRETS.sub(r"\1***", text)
