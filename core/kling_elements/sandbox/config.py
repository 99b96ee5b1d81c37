"""The sandbox's settings, and the envelope/error plumbing every sandbox module shares.

``SandboxConfig`` is frozen: a running sandbox never changes its keys or timings under a
client's feet. ``ApiError`` is how any sandbox module refuses a request; the server turns it
into Kling's envelope with the HTTP status taken from :data:`kling_elements.errors.CODES`
(the one table of codes), so no status is ever written twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from starlette.responses import JSONResponse

from ..callbacks.signing import secret_key
from ..errors import CODES

__all__ = [
    "CALLBACK_FORMATS", "SUCCESS_MESSAGE", "ApiError", "SandboxConfig", "envelope",
    "new_request_id",
]

SUCCESS_MESSAGE = "SUCCEED"
CALLBACK_FORMATS = ("legacy", "new", "both")


@dataclass(frozen=True)
class SandboxConfig:
    """How a sandbox runs. Loopback by default; keys are the well-known sandbox defaults.

    ``data_dir`` ``None`` means a fresh temporary directory, removed when the sandbox stops.
    ``task_seconds`` is how long (on the sandbox clock) a task takes at least;
    ``max_long_side`` bounds the normalized video's longer side (frames are decoded and
    written at that size). ``pack_units`` is the size of the account's one resource pack and
    ``account_lag_s`` how far behind ``/account/costs`` reports its remaining quantity
    (see ``billing``).
    Task callbacks are sent in ``callback_format`` (``legacy``, what
    Multi-Elements sends; ``new``; or ``both``), signed Standard Webhooks-style when
    ``webhook_secret`` (``whsec_<base64>``) is set, and retried after each of
    ``callback_retry_s`` (sandbox seconds) while the receiver fails.
    ``mask_size_order`` is how masks give their ``size``: ``"hw"`` as
    documented, or ``"wh"`` as in the docs' own example (clients must read both).
    ``init_frame_size`` False leaves ``width``/``height`` out of init answers (the docs call
    them "currently unused": clients must not depend on them).
    """

    host: str = "127.0.0.1"
    port: int = 8765
    access_key: str = "sandbox-access"
    secret_key: str = "sandbox-secret-key-for-local-use-only"
    api_key: str = "sandbox-api-key"
    data_dir: str | Path | None = None
    task_seconds: float = 10.0
    max_concurrent_tasks: int = 3
    max_long_side: int = 1280
    pack_units: float = 10000.0
    account_lag_s: float = 0.0
    mask_size_order: str = "hw"
    init_frame_size: bool = True
    webhook_secret: str | None = None
    callback_format: str = "legacy"
    callback_retry_s: tuple[float, ...] = (2.0, 10.0, 30.0)

    def __post_init__(self) -> None:
        if isinstance(self.max_long_side, bool) or not isinstance(self.max_long_side, int) \
                or self.max_long_side < 2:
            raise ValueError(f"max_long_side {self.max_long_side!r} must be a whole number of "
                             "pixels >= 2 (1280 by default; 2160 keeps Kling's largest clips)")
        if self.mask_size_order not in ("hw", "wh"):
            raise ValueError(f"mask_size_order {self.mask_size_order!r} is not 'hw' or 'wh'")
        if self.callback_format not in CALLBACK_FORMATS:
            raise ValueError(f"callback format {self.callback_format!r} is not one of "
                             f"{', '.join(CALLBACK_FORMATS)}")
        if self.webhook_secret:
            secret_key(self.webhook_secret)  # a malformed secret fails at start, not per task

    def __repr__(self) -> str:  # keys never appear in logs or tracebacks
        return (
            f"SandboxConfig(host={self.host!r}, port={self.port}, data_dir={self.data_dir!r}, "
            f"task_seconds={self.task_seconds}, max_concurrent_tasks={self.max_concurrent_tasks}, "
            f"max_long_side={self.max_long_side}, callback_format={self.callback_format!r}, "
            f"signed={bool(self.webhook_secret)})"
        )


class ApiError(Exception):
    """A refusal with a Kling business code; ``message`` names the field and the rule."""

    def __init__(self, code: int, message: str) -> None:
        if code not in CODES:
            raise ValueError(f"undocumented business code {code}")
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return CODES[self.code].http_status


def new_request_id() -> str:
    return uuid.uuid4().hex


def envelope(
    code: int,
    message: str,
    request_id: str,
    data: object = None,
    *,
    http_status: int | None = None,
) -> JSONResponse:
    """Kling's ``{"code", "message", "request_id", "data"}`` answer.

    An error (``code`` not 0) has no ``data`` key, as in the docs' one error example (1303).
    The HTTP status is the one ``errors.CODES`` gives for ``code`` (200 for 0) unless a
    fault rule imposes another.
    """
    if http_status is None:
        http_status = 200 if code == 0 else CODES[code].http_status
    body: dict = {"code": code, "message": message, "request_id": request_id}
    if code == 0:
        body["data"] = data
    return JSONResponse(
        body,
        status_code=http_status,
        headers={"X-Request-Id": request_id},
    )
