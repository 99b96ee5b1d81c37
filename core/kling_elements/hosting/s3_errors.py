"""S3's XML error answers, turned into messages that name the store and the fix.

Only the error's ``Code``, ``Message`` and ``Region`` are read: the rest of an S3 error body
may quote the canonical request, the string to sign or the access key id, none of which
belongs in a message. Everything shown passes through :func:`sigv4.redact`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ..sigv4 import redact
from .base import HostingError

__all__ = ["RETRYABLE_CODES", "parse_error", "s3_error"]

RETRYABLE_CODES = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"})
_MAX_BODY = 64 * 1024


def parse_error(body: bytes) -> dict[str, str]:
    """``Code``, ``Message`` and ``Region`` of an S3 ``<Error>`` body (empty if it is not one)."""
    try:
        root = ET.fromstring(body[:_MAX_BODY])
    except ET.ParseError:
        return {}
    if root.tag.rpartition("}")[2] != "Error":
        return {}
    found = {}
    for child in root:
        name = child.tag.rpartition("}")[2]
        if name in ("Code", "Message", "Region") and child.text:
            found[name] = child.text.strip()
    return found


def _advice(code: str, status: int, *, bucket: str, endpoint: str, region: str, prefix: str,
            store_region: str) -> str:
    where = f"bucket {bucket!r} at {endpoint}"
    if code == "NoSuchBucket":
        return (f"{where} does not exist: create the bucket, or fix the bucket name "
                "(s3_bucket) or the endpoint (s3_endpoint / AWS_ENDPOINT_URL)")
    if code in ("AccessDenied", "AllAccessDisabled", "AccountProblem"):
        return (f"{where} denied access: the key needs s3:PutObject and s3:GetObject on "
                f"{bucket}/{prefix}* (check its policy and the bucket policy)")
    if code in ("InvalidAccessKeyId", "InvalidClientTokenId"):
        return (f"{endpoint} does not know the access key id: check s3_access_key_id / "
                "AWS_ACCESS_KEY_ID, and that the key was issued by this store")
    if code == "SignatureDoesNotMatch":
        return (f"the store rejected the signature for {where}: check that the secret access "
                "key (s3_secret_access_key / AWS_SECRET_ACCESS_KEY) belongs to the access key "
                f"id, and the region (now {region!r})")
    if code == "RequestTimeTooSkewed":
        return (f"this computer's clock differs from {endpoint}'s by more than 15 minutes: set "
                "the clock right (turn on network time sync) and try again")
    if code in ("AuthorizationHeaderMalformed", "PermanentRedirect", "IncorrectEndpoint",
                "IllegalLocationConstraintException"):
        other = f"region {store_region!r}" if store_region else "another region"
        return (f"{where} is in {other}, not {region!r}: set s3_region / AWS_REGION to the "
                "bucket's region (or use the region's endpoint)")
    if code in ("ExpiredToken", "TokenRefreshRequired", "InvalidToken"):
        return ("the session token (s3_session_token / AWS_SESSION_TOKEN) is expired or "
                "invalid: get fresh temporary credentials")
    if code in ("XAmzContentSHA256Mismatch", "BadDigest", "IncompleteBody"):
        return "the clip changed while it was uploaded: save it completely, then publish again"
    if code == "EntityTooLarge":
        return f"the clip is larger than {endpoint} accepts in one upload: make it smaller"
    if code in RETRYABLE_CODES or status >= 500:
        return f"{endpoint} is busy or failing: try again in a few minutes"
    if not code:
        return (f"{endpoint} answered without an S3 error body: is it an S3-compatible "
                "endpoint, and is the addressing style (s3_addressing) right for it?")
    return f"{where} refused it: check the bucket, the key's permissions and the endpoint"


def s3_error(status: int, body: bytes, *, action: str, bucket: str, endpoint: str,
             region: str, prefix: str = "", secrets: tuple[str, ...] = ()) -> HostingError:
    """The :class:`HostingError` for a non-2xx S3 answer to ``action`` (e.g. "upload");
    ``secrets`` are masked should the store's message quote one."""
    info = parse_error(body)
    code = info.get("Code", "")
    advice = _advice(code, status, bucket=bucket, endpoint=endpoint, region=region,
                     prefix=prefix, store_region=info.get("Region", ""))
    said = f" {code}" if code else ""
    if info.get("Message"):
        said += f" ({info['Message'][:200]})"
    return HostingError(redact(f"S3 {action} failed:{said}: {advice}", *secrets), provider="s3",
                        store_code=code or None, http_status=status)
