"""Exceptions, keyed by Kling's business codes.

Kling answers with an envelope ``{"code", "message", "request_id", "data"}``; the business
``code`` (not the HTTP status, which is shared by retryable and fatal causes alike: 1302 and
1102 are both 429) decides the exception family and whether a retry can help. The table
below is the single source of truth for that decision; the client and the sandbox both read
it.

Every exception's text says what to do next. None of them ever carries a key, a secret or a
token: they are built only from codes, Kling's own message and request ids.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CODES",
    "AccountError",
    "AuthError",
    "CodeInfo",
    "ConnectionFailed",
    "CreateCancelled",
    "InvalidRequestError",
    "KlingError",
    "NotFoundError",
    "PermissionDeniedError",
    "PolicyError",
    "RateLimitError",
    "RejectedError",
    "ResponseFormatError",
    "RestoreDisabledError",
    "ServerError",
    "TaskFailedError",
    "TaskTimeoutError",
    "ValidationError",
    "error_for",
    "is_retryable_code",
    "min_wait_s",
]


class KlingError(Exception):
    """Root of every error this library raises about Kling or its sandbox.

    ``code`` is Kling's business code (``None`` when the failure happened before an answer,
    e.g. a connection error), ``http_status`` the HTTP status if there was a response,
    ``request_id`` Kling's id of the request (quote it to Kling's support).
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.request_id = request_id

    def __str__(self) -> str:
        parts = [self.message]
        tags = []
        if self.code is not None:
            tags.append(f"code {self.code}")
        if self.http_status is not None:
            tags.append(f"HTTP {self.http_status}")
        if self.request_id:
            tags.append(f"request_id {self.request_id}")
        if tags:
            parts.append(f"({', '.join(tags)})")
        return " ".join(parts)


class AuthError(KlingError):
    """401: the key, the token or the region is wrong (1000-1004)."""


class AccountError(KlingError):
    """429 but not retryable: the account is blocked, in arrears or out of credits (1100-1102)."""


class PermissionDeniedError(KlingError):
    """403 or an IP allow-list refusal: this key may not use the resource (1103, 1304)."""


class InvalidRequestError(KlingError):
    """400/404: the request itself is wrong (12xx); sending it again cannot help."""


class NotFoundError(InvalidRequestError):
    """1203: the task, session or video does not exist (or no longer exists)."""


class PolicyError(KlingError):
    """400: Kling's platform or content-safety policy refused the input (1300, 1301)."""


class RateLimitError(KlingError):
    """429 that clears by waiting (1302 too fast, 1303 concurrency slots in use)."""


class ServerError(KlingError):
    """Kling's side failed or is busy (5000-5002); retried before it reaches the caller."""


class ConnectionFailed(KlingError):
    """No answer: DNS, refused or reset connection, or a timeout."""


class CreateCancelled(KlingError):
    """The caller cancelled a create call before Kling accepted it (``submit_task``'s ``cancel``).

    ``may_exist`` False: every POST sent was refused outright (1302, 1303) or none was sent,
    so no task exists and nothing was charged. True: an earlier POST's answer was lost, and
    that request may still be carried out late; keep looking the task up by
    ``external_task_id`` (a paid task must not be forgotten).
    """

    def __init__(self, message: str, *, external_task_id: str, may_exist: bool) -> None:
        super().__init__(message)
        self.external_task_id = external_task_id
        self.may_exist = may_exist


class ResponseFormatError(KlingError):
    """The server answered, but not with the documented envelope or fields."""


class RejectedError(KlingError):
    """A selection call succeeded (``code`` 0) but ``data.status`` rejected the video/frame."""

    def __init__(self, message: str, *, status: int, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.status = status


class TaskFailedError(KlingError):
    """The edit task ended in ``failed``; ``task`` is the last state Kling reported."""

    def __init__(self, message: str, *, task: object) -> None:
        super().__init__(message)
        self.task = task


class TaskTimeoutError(KlingError, TimeoutError):
    """``wait`` reached its deadline; the task may still finish: query it again later."""

    def __init__(self, message: str, *, task: object) -> None:
        super().__init__(message)
        self.task = task


class RestoreDisabledError(KlingError):
    """A session had to be restored (re-running init and every add, which Kling charges
    again), but the client was made with ``auto_restore=False``. Nothing was sent."""


class ValidationError(ValueError):
    """Input breaks a documented limit; raised before anything is sent.

    The message names the value, the limit and the fix. It is a ``ValueError`` (not a
    ``KlingError``) because nothing reached Kling.
    """


@dataclass(frozen=True)
class CodeInfo:
    """What one business code means, how to react, and which exception carries it."""

    http_status: int
    meaning: str
    advice: str
    kind: type[KlingError]
    retryable: bool = False
    resign: bool = False
    # The shortest wait before a retry that Kling's docs advise (1303: at least 1 s).
    min_wait_s: float = 0.0


_AUTH_ADVICE = (
    "check the access/secret key (or API key) and that the base URL is the region the key "
    "was issued for (global: api-singapore.klingai.com, China: api-beijing.klingai.com)"
)

CODES: dict[int, CodeInfo] = {
    1000: CodeInfo(401, "authentication failed", _AUTH_ADVICE, AuthError),
    1001: CodeInfo(401, "Authorization header empty", _AUTH_ADVICE, AuthError),
    1002: CodeInfo(401, "Authorization value invalid", _AUTH_ADVICE, AuthError),
    1003: CodeInfo(
        401, "token not yet valid", "check this computer's clock", AuthError, resign=True
    ),
    1004: CodeInfo(401, "token expired", "check this computer's clock", AuthError, resign=True),
    1100: CodeInfo(429, "account exception", "contact Kling support", AccountError),
    1101: CodeInfo(429, "account in arrears", "settle the account's balance", AccountError),
    1102: CodeInfo(
        429, "resource pack used up or expired", "buy or renew a resource pack", AccountError
    ),
    1103: CodeInfo(
        403, "no permission for this resource or model",
        "check the model name and the key's permissions", PermissionDeniedError,
    ),
    1200: CodeInfo(400, "invalid request", "fix the request", InvalidRequestError),
    1201: CodeInfo(400, "invalid parameter", "fix the parameter named above", InvalidRequestError),
    1202: CodeInfo(404, "invalid method", "check the base URL and path", InvalidRequestError),
    1203: CodeInfo(
        404, "resource does not exist",
        "check the id; sessions last 24 h and results 30 days", NotFoundError,
    ),
    1300: CodeInfo(400, "platform policy triggered", "change the input", PolicyError),
    1301: CodeInfo(
        400, "content safety policy triggered", "change the prompt or images", PolicyError
    ),
    1302: CodeInfo(
        429, "rate limit: requests too fast", "slow down", RateLimitError, retryable=True
    ),
    1303: CodeInfo(
        429, "concurrency over the resource pack's limit",
        "wait for running tasks to finish", RateLimitError, retryable=True, min_wait_s=1.0,
    ),
    1304: CodeInfo(
        429, "IP allow-list policy", "add this machine's IP to the key's allow-list",
        PermissionDeniedError,
    ),
    5000: CodeInfo(500, "internal server error", "try again later", ServerError, retryable=True),
    5001: CodeInfo(
        503, "service temporarily unavailable", "try again later", ServerError, retryable=True
    ),
    5002: CodeInfo(
        504, "internal timeout (backlog)", "try again later", ServerError, retryable=True
    ),
}


def is_retryable_code(code: int | None) -> bool:
    """True only for the business codes that clear by waiting (1302, 1303, 5000-5002)."""
    info = CODES.get(code) if code is not None else None
    return bool(info and info.retryable)


def min_wait_s(code: int | None) -> float:
    """The shortest wait before retrying after ``code`` (0 when the docs advise none)."""
    info = CODES.get(code) if code is not None else None
    return info.min_wait_s if info else 0.0


def _kind_for_unknown(code: int, http_status: int | None) -> type[KlingError]:
    family = code // 100
    if family == 10:
        return AuthError
    if family == 11:
        return AccountError
    if family == 12:
        return InvalidRequestError
    if family == 13:
        return PolicyError
    if family == 50:
        return ServerError
    if http_status is not None and http_status >= 500:
        return ServerError
    return KlingError


def error_for(
    code: int, message: str, *, http_status: int | None = None, request_id: str | None = None
) -> KlingError:
    """Build the exception for a non-zero business code, with advice on what to do."""
    info = CODES.get(code)
    if info is None:
        kind = _kind_for_unknown(code, http_status)
        text = message or "Kling returned an undocumented error code"
    else:
        kind = info.kind
        text = f"{message or info.meaning}: {info.advice}"
    return kind(text, code=code, http_status=http_status, request_id=request_id)
