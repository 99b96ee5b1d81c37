"""The retry policy, in one place: what is retried, and how long to wait before it.

Kling's HTTP status does not tell a retryable failure from a fatal one (1302 and 1102 are
both 429), so the decision is made on the business code (see ``errors.CODES``), on timeouts
and on connection errors. Waits are capped exponential backoff with jitter, or the
server's ``Retry-After`` when it gives one; a ``Retry-After`` beyond
``MAX_RETRY_AFTER_S`` means "not now": the error goes to the caller instead.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = [
    "INITIAL_BACKOFF_S",
    "MAX_BACKOFF_S",
    "MAX_RETRY_AFTER_S",
    "RetryPolicy",
    "backoff",
    "notify_retry_observers",
    "observe_retries",
    "parse_retry_after",
    "retry_wait",
]

INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
MAX_RETRY_AFTER_S = 120.0


def backoff(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based): 0.5·2^n, capped, jittered.

    Jitter removes up to a quarter of the wait so clients that failed together do not retry
    together; the result is always within ``(0.75·base, base]``.
    """
    base = min(INITIAL_BACKOFF_S * 2.0 ** min(max(attempt, 0), 32), MAX_BACKOFF_S)
    draw = (rng or random).random()
    return base * (1.0 - 0.25 * draw)


def parse_retry_after(
    headers: Mapping[str, str] | None, now: float | None = None
) -> float | None:
    """Seconds the server asked us to wait, or ``None`` when it did not say (or said nonsense).

    Reads ``retry-after-ms`` (milliseconds), then ``Retry-After`` as seconds or as an HTTP
    date. Negative, infinite or unparsable values count as not given.
    """
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms is not None:
        try:
            value = float(raw_ms) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        parsed = email.utils.parsedate_tz(raw)
        if parsed is None:
            return None
        value = email.utils.mktime_tz(parsed) - (time.time() if now is None else now)
        return max(value, 0.0)
    if not math.isfinite(value) or value < 0:
        return None
    return value


def retry_wait(
    attempt: int,
    headers: Mapping[str, str] | None = None,
    rng: random.Random | None = None,
    *,
    minimum: float = 0.0,
) -> float | None:
    """How long to wait before retrying, or ``None`` if the server's wait is too long to honour.

    Never less than ``minimum`` (the code's advised wait, ``errors.min_wait_s``: 1 s for 1303).
    """
    asked = parse_retry_after(headers)
    if asked is not None:
        return max(asked, minimum) if asked <= MAX_RETRY_AFTER_S else None
    return max(backoff(attempt, rng), minimum)


@dataclass
class RetryPolicy:
    """The one retry helper every retry loop uses: how many retries, how long each wait is
    (capped, jittered backoff, or the server's ``Retry-After``), who hears of it, how to sleep.

    ``sleep``, ``rng`` and ``on_retry(error, wait_s)`` are injectable so a test (or a caller's
    scheduler) sees and controls every wait. A loop asks :meth:`pause` after a retryable
    failure: it returns False (nothing waited, nobody told) when the retries are used up or
    the server asked for a wait beyond ``MAX_RETRY_AFTER_S``, else it reports the wait to
    ``on_retry`` and to the context's observers (``observe_retries``: an edit hears the
    retries of its downloads and uploads too), sleeps it, and returns True. The client's
    flows, which must not sleep themselves, ask :meth:`wait_before` and hand the wait to
    their driver.
    """

    max_retries: int = 4
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random | None = None
    on_retry: Callable[[Exception, float], None] | None = None
    # The wait when the server names none: ``backoff`` unless a caller schedules its own.
    schedule: Callable[[int, random.Random | None], float] | None = None

    def wait_before(self, attempt: int, headers: Mapping[str, str] | None = None, *,
                    minimum: float = 0.0) -> float | None:
        """Seconds to wait before retry number ``attempt`` (0-based), or ``None`` to give up."""
        if attempt >= self.max_retries:
            return None
        if self.schedule is not None and parse_retry_after(headers) is None:
            return max(self.schedule(attempt, self.rng), minimum)
        return retry_wait(attempt, headers, self.rng, minimum=minimum)

    def pause(self, attempt: int, error: Exception, headers: Mapping[str, str] | None = None,
              *, minimum: float = 0.0) -> bool:
        """Wait before retry number ``attempt`` after ``error``; False means give up."""
        wait = self.wait_before(attempt, headers, minimum=minimum)
        if wait is None:
            return False
        if self.on_retry is not None:
            self.on_retry(error, wait)
        notify_retry_observers(error, wait)
        self.sleep(wait)
        return True


RetryObserver = Callable[[Exception, float], None]
_observers: ContextVar[tuple[RetryObserver, ...]] = ContextVar(
    "kling_elements_retry_observers", default=())


@contextmanager
def observe_retries(observer: RetryObserver) -> Iterator[None]:
    """Within the block, ``observer(error, wait_s)`` hears every retry a client makes on
    behalf of this thread (or this asyncio task), besides the client's own ``on_retry``.

    Why: one client serves many concurrent edits (the batch); each edit's retries belong to
    that edit, and swapping the shared client's ``on_retry`` for it would mix them up.
    Observers nest; an observer that raises stops the request it was told about.
    """
    token = _observers.set((*_observers.get(), observer))
    try:
        yield
    finally:
        _observers.reset(token)


def notify_retry_observers(error: Exception, wait: float) -> None:
    """Tell the observers of the current context about a coming retry (the client's drivers
    and :meth:`RetryPolicy.pause` call it)."""
    for observer in _observers.get():
        observer(error, wait)
