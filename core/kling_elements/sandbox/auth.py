"""Token verification, as Kling does it: API key as-is, or an HS256 JWT signed with the secret.

The times in the token (``nbf``, ``exp``) are compared with the *sandbox* clock, so advancing
that clock expires tokens exactly like waiting would. The signature is checked with
``hmac`` directly (constant-time compare) rather than through PyJWT, which warns on every
call for short HMAC keys such as the sandbox default; the rules are the same: header
``alg`` must be ``HS256``, the signature must match, ``exp`` must be present.

The caller's login is returned as a label (``"api_key"`` or ``"access_key"``) that never
contains key material, so it can be logged. Both logins belong to the sandbox's one account
(``ACCOUNT``): at Kling, tasks, the concurrency limit and ``external_task_id`` uniqueness are
per account and shared by all of its keys, so the sandbox scopes them by account, not login.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

from .config import ApiError

__all__ = ["ACCOUNT", "OWNER_ACCESS_KEY", "OWNER_API_KEY", "verify_authorization"]

OWNER_API_KEY = "api_key"
OWNER_ACCESS_KEY = "access_key"
# The account every key configured for one sandbox belongs to.
ACCOUNT = "account"


def _b64url(segment: str) -> bytes:
    padded = segment + "=" * (-len(segment) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


def _invalid(reason: str) -> ApiError:
    return ApiError(1002, f"Authorization value invalid: {reason}")


def _claims(token: str) -> tuple[dict, bytes, bytes]:
    """Header-checked payload, signing input and signature; 1002 for anything malformed."""
    parts = token.split(".")
    if len(parts) != 3:
        raise _invalid("not a JWT (expected header.payload.signature) nor the API key")
    try:
        header = json.loads(_b64url(parts[0]))
        payload = json.loads(_b64url(parts[1]))
        signature = _b64url(parts[2])
    except (ValueError, binascii.Error, UnicodeError):
        raise _invalid("the JWT is not base64url-encoded JSON") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise _invalid("the JWT header and payload must be JSON objects")
    if header.get("alg") != "HS256":
        raise _invalid(f"JWT alg {header.get('alg')!r} is not HS256")
    return payload, f"{parts[0]}.{parts[1]}".encode("ascii"), signature


def _number(payload: dict, name: str) -> float | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid(f"JWT claim {name!r} must be a number of seconds")
    return float(value)


def verify_authorization(
    header: str | None,
    *,
    api_key: str,
    access_key: str,
    secret_key: str,
    now: float,
) -> str:
    """The login label of a valid ``Authorization`` header, else an :class:`ApiError`.

    1001 missing/empty header; 1002 malformed token or bad signature; 1000 a well-formed
    JWT whose ``iss`` is not the sandbox's access key; 1003 ``nbf`` later than ``now``;
    1004 ``exp`` at or before ``now``.
    """
    if not header or not header.strip():
        raise ApiError(1001, "Authorization header is empty: send 'Bearer <token>'")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _invalid("expected 'Bearer <token>'")
    if hmac.compare_digest(token.encode(), api_key.encode()):
        return OWNER_API_KEY
    try:
        token.encode("ascii")
    except UnicodeError:
        raise _invalid("the token is not ASCII") from None
    payload, signing_input, signature = _claims(token)
    iss = payload.get("iss")
    if not isinstance(iss, str) or not hmac.compare_digest(iss.encode(), access_key.encode()):
        raise ApiError(1000, "authentication failed: the token's iss is not a known access key")
    expected = hmac.new(secret_key.encode(), signing_input, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise _invalid("the JWT signature does not match the secret key")
    nbf = _number(payload, "nbf")
    exp = _number(payload, "exp")
    if exp is None:
        raise _invalid("the JWT has no 'exp' claim")
    if nbf is not None and nbf > now:
        raise ApiError(1003, f"token not yet valid: nbf is {nbf - now:.0f} s in the future")
    if exp <= now:
        raise ApiError(1004, f"token expired {now - exp:.0f} s ago")
    return OWNER_ACCESS_KEY
