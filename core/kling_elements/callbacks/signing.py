"""Standard Webhooks signatures (https://www.standardwebhooks.com): sign and verify.

A delivery carries ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
``webhook-signature``: space-separated ``v1,<base64 HMAC-SHA256>`` entries over
``"{id}.{timestamp}.{body}"``, keyed with the base64 secret that follows ``whsec_``. A
sender rotating its key signs with both keys, so any one valid entry is enough.

Written here (about forty lines) rather than taken from the ``standardwebhooks`` package,
whose ``Webhook.verify`` reads the wall clock (no injected clock: a sandbox or a test cannot
move time), raises ``ValueError``/``binascii.Error``/``UnicodeDecodeError`` on malformed
headers or bodies instead of its own error, and keeps no memory of ids (replays). The
package is the reference the tests sign with (``dev`` extra).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence

__all__ = ["SECRET_PREFIX", "TOLERANCE_S", "SignatureError", "StaleError", "secret_key",
           "sign", "verify"]

SECRET_PREFIX = "whsec_"
TOLERANCE_S = 300  # the spec's (and Kling's) five minutes either way


class SignatureError(ValueError):
    """A delivery whose headers or signature do not verify; ``str`` says which part."""


class StaleError(SignatureError):
    """A signed delivery whose timestamp is outside the tolerance (old, or from the future)."""


def secret_key(secret: str | bytes) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (raw bytes are taken as the key).

    The error names the problem, never the secret.
    """
    if isinstance(secret, bytes):
        key = secret
    else:
        text = secret.strip()
        text = text[len(SECRET_PREFIX):] if text.startswith(SECRET_PREFIX) else text
        try:
            key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(
                "the webhook secret is not base64 after 'whsec_': copy it exactly as the "
                "sender shows it (e.g. whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw)"
            ) from None
    if not key:
        raise ValueError("the webhook secret is empty: give the whsec_... value")
    return key


def _mac(key: bytes, msg_id: str, timestamp: int | str, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature entry of ``body`` (what a sender puts in the header)."""
    return "v1," + base64.b64encode(_mac(secret_key(secret), msg_id, timestamp, body)).decode()


def verify(
    secrets: Sequence[str | bytes],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance_s: float = TOLERANCE_S,
) -> tuple[str, int]:
    """``(webhook_id, timestamp)`` of a delivery signed with any of ``secrets``.

    Raises :class:`StaleError` when the timestamp is more than ``tolerance_s`` from ``now``
    (Unix seconds), :class:`SignatureError` for missing or malformed headers or when no
    ``v1`` entry matches. Entries of other versions, or that are not base64, are skipped.
    Comparisons take constant time.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get("webhook-id", "")
    stamp = lower.get("webhook-timestamp", "").strip()
    entries = lower.get("webhook-signature", "").split()
    if not (msg_id and stamp and entries):
        raise SignatureError("unsigned: webhook-id, webhook-timestamp and webhook-signature "
                             "are all required")
    # isdigit() alone takes "²" and other non-ASCII digits, which int() refuses or misreads
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12:
        raise SignatureError(f"webhook-timestamp {stamp[:20]!r} is not Unix seconds")
    timestamp = int(stamp)
    if abs(now - timestamp) > tolerance_s:
        raise StaleError(f"webhook-timestamp {timestamp} is {now - timestamp:+.0f} s off this "
                         f"machine's clock (the limit is {tolerance_s:g} s): a replay, or a "
                         "clock to set right")
    expected = [_mac(secret_key(s), msg_id, stamp, body) for s in secrets]
    for entry in entries:
        version, _, value = entry.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        if any(hmac.compare_digest(mac, given) for mac in expected):
            return msg_id, timestamp
    raise SignatureError("no webhook-signature entry matches: wrong secret, or the body was "
                         "changed on the way")
