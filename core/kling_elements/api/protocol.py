"""The wire rules of Kling's API, with no I/O: what a request is, what an answer means.

Every client call is written once, as a *flow*: a generator that yields commands
(:class:`Send` one HTTP request, :class:`Pause` before a retry, :class:`Sleep`,
:class:`Listen` to a callback inbox, :class:`Restore` a session) and receives their
outcomes. A driver performs the commands: ``drivers.SyncDriver`` with ``httpx.Client``
and ``time.sleep``, ``drivers.AsyncDriver`` with ``httpx.AsyncClient`` and
``asyncio.sleep``. So the sync and the async client share every rule (retries, never
paying twice, session restores, the poll schedule) and differ only in how bytes move and
time passes.

A transport failure is thrown into the flow at its ``yield Send(...)`` as the ``httpx``
exception; any other exception a driver meets propagates unchanged.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from .. import validate
from ..errors import (
    ConnectionFailed,
    KlingError,
    RejectedError,
    ResponseFormatError,
    ServerError,
    error_for,
    is_retryable_code,
    min_wait_s,
)
from ..models import SelectionResult
from ..retry import RetryPolicy

if TYPE_CHECKING:
    from ..callbacks import TaskInbox

__all__ = [
    "ACCOUNT_COSTS",
    "API",
    "MAX_BODY_BYTES",
    "Answer",
    "BodyCap",
    "Flow",
    "Listen",
    "Pause",
    "Restore",
    "Send",
    "Sleep",
    "Transport",
    "check_rejection",
    "in_doubt",
    "mask_dicts",
    "parse_envelope",
    "unix_ms",
]

log = logging.getLogger("kling_elements")

API = "/v1/videos/multi-elements"
ACCOUNT_COSTS = "/account/costs"  # no /v1 prefix
MAX_BODY_BYTES = 16 * 1024 * 1024

T = TypeVar("T")


@dataclass(frozen=True)
class Send:
    """Send one request to the API; the flow receives an :class:`Answer`."""

    method: str
    path: str
    body: dict[str, Any] | None = None
    params: dict[str, Any] | None = None


@dataclass(frozen=True)
class Answer:
    """An API answer, its body read in full (within :data:`MAX_BODY_BYTES`)."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes


@dataclass(frozen=True)
class Pause:
    """Tell ``on_retry`` about a coming retry, then wait; the flow receives True when
    ``cancel`` was set before or during the wait."""

    error: KlingError
    seconds: float
    cancel: threading.Event | None = None


@dataclass(frozen=True)
class Sleep:
    """Wait ``seconds`` (a poll interval, a pace), reported to nobody."""

    seconds: float


@dataclass(frozen=True)
class Listen:
    """Wait up to ``seconds`` for a callback delivery about a task (``TaskInbox.wait_for``);
    the flow receives the delivery or ``None``."""

    inbox: TaskInbox
    task_id: str
    seconds: float
    beyond: str | None


@dataclass(frozen=True)
class Restore:
    """Restore a session through the client's public ``restore`` (so a subclass that watches
    restores sees every one, as it always has); the flow receives the restored state."""

    state: Any
    reason: str


Command = Send | Pause | Sleep | Listen | Restore
Flow = Generator[Command, Any, T]


class BodyCap:
    """Reads an answer's body chunk by chunk, refusing one over :data:`MAX_BODY_BYTES`.

    A Kling answer is a small JSON envelope; a proxy, a wrong base URL or a hostile server
    may send gigabytes. Memory stays bounded: an announced or actual size over the cap
    stops the read at once with :class:`ResponseFormatError` (not retried).
    """

    def __init__(self, base_url: str, status_code: int, headers: Mapping[str, str]) -> None:
        self._message = (
            f"the answer from {base_url} is over the {MAX_BODY_BYTES} byte limit of a "
            "Kling envelope: check the base URL (is a proxy or a file server answering?)"
        )
        self._status = status_code
        self._chunks: list[bytes] = []
        self._size = 0
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise ResponseFormatError(self._message, http_status=status_code)

    def add(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > MAX_BODY_BYTES:
            raise ResponseFormatError(self._message, http_status=self._status)
        self._chunks.append(chunk)

    def content(self) -> bytes:
        return b"".join(self._chunks)


def parse_envelope(status_code: int, content: bytes, base_url: str) -> Any:
    """The envelope's ``data``, or the exception its code calls for."""
    try:
        body = json.loads(content) if content else None
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        body = None
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, int) or isinstance(code, bool):
        if status_code >= 500:
            raise ServerError(
                "the server answered without Kling's JSON envelope: try again later",
                http_status=status_code,
            )
        raise ResponseFormatError(
            f"the server at {base_url} did not answer with Kling's JSON envelope "
            f"(HTTP {status_code}): check the base URL",
            http_status=status_code,
        )
    request_id = body.get("request_id") if isinstance(body.get("request_id"), str) else None
    if code != 0:
        raise error_for(
            code, str(body.get("message") or ""),
            http_status=status_code, request_id=request_id,
        )
    return body.get("data")


def check_rejection(data: Any, what: str) -> None:
    """Raise :class:`RejectedError` for a selection answer whose ``data.status`` refuses."""
    status = data.get("status", 0) if isinstance(data, dict) else 0
    if status:
        raise RejectedError(
            f"Kling rejected the {what} (rejection status {status}): check the clip meets "
            "the rules (length, size, fps) and try another frame",
            status=int(status), code=0,
        )


def mask_dicts(result: SelectionResult) -> list[dict[str, Any]]:
    return [{"object_id": m.object_id, "size": list(m.size), "counts": m.counts}
            for m in result.masks]


def unix_ms(value: datetime | float, name: str) -> int:
    """``value`` (a datetime, naive meaning local time, or Unix seconds) in Unix ms."""
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise validate.ValidationError(
            f"{name} {value!r} must be a datetime or Unix seconds (e.g. time.time())")
    if value > 1e11:
        raise validate.ValidationError(
            f"{name} {value!r} looks like milliseconds: pass Unix seconds (or a datetime); the "
            "client converts to Kling's milliseconds itself")
    return int(value * 1000)


def in_doubt(exc: KlingError, endpoint: str) -> KlingError:
    """``exc`` saying that the call's outcome is unknown, and what to do about it."""
    return type(exc)(
        f"{exc.message}; the {endpoint} may or may not have taken effect, and without the "
        "session's state this client cannot check: preview the selection, or start a new "
        "session",
        code=exc.code, http_status=exc.http_status, request_id=exc.request_id,
    )


class Transport:
    """The request flow shared by both clients: one logical request and its retries.

    Subclasses (the client classes) set ``base_url``, ``max_retries``, ``_rng`` and
    ``_clock`` before any flow runs.
    """

    base_url: str
    max_retries: int
    _rng: random.Random
    _clock: Callable[[], float]

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        idempotent: bool = True,
        min_wait: float = 0.0,
        cancel: threading.Event | None = None,
    ) -> Flow[Any]:
        """Send one logical request, retrying what the policy says may be retried.

        With ``idempotent=False`` only definite refusals (1302, 1303) are retried; a timeout,
        a dropped connection or a server error raises at once, because the request may have
        taken effect and only the caller knows how to find out (``submit_task`` does).
        A retry waits at least ``min_wait`` seconds (an endpoint's documented pace).
        A ``cancel`` set during a wait between retries ends the wait and raises the last error.
        """
        attempt = 0
        while True:
            try:
                answer = yield Send(method, path, body, params)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                error: KlingError = ConnectionFailed(
                    f"no answer from {self.base_url} ({exc.__class__.__name__}): check the "
                    "network connection and the base URL"
                )
                if not idempotent:
                    raise error from None
                headers = None
            else:
                try:
                    return parse_envelope(answer.status_code, answer.content, self.base_url)
                except ServerError as exc:
                    if not idempotent or (exc.code is not None and not is_retryable_code(exc.code)):
                        raise
                    error = exc
                except KlingError as exc:
                    if not is_retryable_code(exc.code):
                        raise
                    error = exc
                headers = dict(answer.headers)
            wait = RetryPolicy(self.max_retries, rng=self._rng).wait_before(
                attempt, headers, minimum=min_wait_s(error.code))
            if wait is None:
                raise error
            wait = max(wait, min_wait)
            log.debug("retrying %s %s in %.2fs after: %s", method, path, wait, error)
            if (yield Pause(error, wait, cancel)):
                raise error
            attempt += 1
