"""Kling's task callbacks: parse both formats, verify Standard Webhooks signatures, receive.

``CallbackInbox`` takes deliveries (verified, deduplicated, in order) and lets
``Client.wait(task_id, inbox=inbox)`` end as soon as the task's final delivery arrives,
polling only as a fallback; ``CallbackServer`` is a small standard-library HTTP receiver
for it (the CLI's ``kling-elements callbacks --listen HOST:PORT``). Nothing here needs more
than the core's dependencies.
"""

from .inbox import CallbackInbox, Delivery, Refused, TaskInbox
from .payload import FORMATS, STATUS_RANK, Callback, PayloadError, parse, rank
from .receiver import MAX_BODY_BYTES, CallbackServer, is_loopback, parse_listen
from .signing import (
    SECRET_PREFIX,
    TOLERANCE_S,
    SignatureError,
    StaleError,
    secret_key,
    sign,
    verify,
)

__all__ = [
    "FORMATS", "MAX_BODY_BYTES", "SECRET_PREFIX", "STATUS_RANK", "TOLERANCE_S", "Callback",
    "CallbackInbox", "CallbackServer", "Delivery", "PayloadError", "Refused",
    "SignatureError", "StaleError", "TaskInbox", "is_loopback", "parse", "parse_listen",
    "rank", "secret_key", "sign", "verify",
]
