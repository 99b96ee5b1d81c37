"""The client: one method per endpoint of Kling's Multi-Elements API.

Guarantees a caller can rely on:

* Nothing is sent when an argument breaks a documented limit (``ValidationError``).
* Retries are decided by Kling's business code (``errors.CODES``), timeouts and connection
  errors, with the policy of ``retry``; everything else raises at once with advice.
* ``create_task`` never pays twice: it always sends an ``external_task_id``, and when the
  answer to a POST is lost it asks Kling for that id before posting again.
* Points are never added (or deleted) twice, nor wiped by a late clear: Kling keeps a copy
  per add and offers no way to read a session's points, and a request that timed out may
  still be carried out later, so a selection call (add, delete, clear) whose answer is lost
  is not replayed on that session; the client moves the points it knows to a new session
  on the same video and sends the call there (``restore``). An expired session is restored
  the same way, so the user's marks outlive the 24 h session.
* Cost is visible: every answer's deduction is on its result (``.cost``), and each
  session's state adds up what its selection calls cost (``SelectionState.spent``). A
  restore, which re-runs init and every add and so is charged again, is recorded in the
  state (``restores``, ``restore_spent``), logged, and reported to ``on_restore``; with
  ``auto_restore=False`` the client never restores by itself (``RestoreDisabledError``).
* Keys and tokens appear in no ``repr``, log line or exception text.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from . import validate
from .auth import ApiKeyAuth, JwtAuth
from .cost import Cost
from .download import ProgressCallback
from .download import download as _download
from .errors import (
    ConnectionFailed,
    CreateCancelled,
    KlingError,
    NotFoundError,
    RateLimitError,
    RejectedError,
    ResponseFormatError,
    RestoreDisabledError,
    ServerError,
    TaskFailedError,
    TaskTimeoutError,
    error_for,
    is_retryable_code,
    min_wait_s,
)
from .media import ImageInput, prepare_image
from .models import STATUS_RANK, AccountCosts, InitResult, PreviewResult, SelectionResult, Task
from .retry import backoff, retry_wait
from .selection import SelectionState

if TYPE_CHECKING:
    from .callbacks import TaskInbox

__all__ = ["DEFAULT_BASE_URL", "REGIONS", "Client", "RestoreReport"]

log = logging.getLogger("kling_elements")

REGIONS = {
    "global": "https://api-singapore.klingai.com",
    "china": "https://api-beijing.klingai.com",
}
DEFAULT_BASE_URL = REGIONS["global"]
API = "/v1/videos/multi-elements"
ACCOUNT_COSTS = "/account/costs"  # no /v1 prefix
# Kling asks for at most one account query per second (QPS <= 1).
ACCOUNT_MIN_INTERVAL_S = 1.0
ACCOUNT_DEFAULT_SPAN_S = 365 * 86400.0
_MAX_BODY_BYTES = 16 * 1024 * 1024


RESTORE_MARGIN_S = 120.0
"""A session with less than this left (by our clock) is restored before it is used.

Two minutes, the largest of the values this rule once had in three places: a call made just
before the end must still reach Kling while the session lives, after its own retries (up to
~8 s of backoff plus a timeout or two) and with this machine's clock a minute off Kling's.
Restoring a little early costs one init and the adds again; missing the end costs a refused
call (1203) and then the same restore, so the margin errs on the early side.
"""


def _mask_dicts(result: SelectionResult) -> list[dict[str, Any]]:
    return [{"object_id": m.object_id, "size": list(m.size), "counts": m.counts}
            for m in result.masks]


@dataclass(frozen=True)
class RestoreReport:
    """One restore: the session it replaced, the new one, why, and what Kling reported
    deducting for it (every init and add it sent, abandoned attempts included)."""

    old_session_id: str
    new_session_id: str
    reason: str
    frames: int
    cost: Cost


def _unix_ms(value: datetime | float, name: str) -> int:
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


def _in_doubt(exc: KlingError, endpoint: str) -> KlingError:
    """``exc`` saying that the call's outcome is unknown, and what to do about it."""
    return type(exc)(
        f"{exc.message}; the {endpoint} may or may not have taken effect, and without the "
        "session's state this client cannot check: preview the selection, or start a new "
        "session",
        code=exc.code, http_status=exc.http_status, request_id=exc.request_id,
    )


# When to poll, in seconds since the wait began: quick outcomes (a refused task, the sandbox's
# seconds-long tasks) are seen within seconds; Kling's edits take minutes (2-10 in practice),
# so the middle is sparse, and from 145 s on a poll every TAIL_POLL_S means a 5-minute task
# costs 15 polls and is seen a median 7 s after it ends (scripts/bench_polling.py).
EARLY_POLLS_S = (1.0, 4.0, 15.0, 60.0, 145.0)
TAIL_POLL_S = 18.0
# With a callback inbox: no poll before CALLBACK_GRACE_S; if a delivery about the task came
# by then the channel works and a poll every CALLBACK_SAFETY_POLL_S only guards against a
# lost final delivery, else the plain schedule above takes over.
CALLBACK_GRACE_S = 30.0
CALLBACK_SAFETY_POLL_S = 600.0
CONFIRM_RETRY_S = 5.0


def _poll_schedule(elapsed: float) -> float:
    """Seconds to sleep before the next poll, ``elapsed`` seconds into a wait."""
    for at in EARLY_POLLS_S:
        if elapsed < at - 0.5:
            return at - elapsed
    return TAIL_POLL_S


class Client:
    """A synchronous client; thread-safe for the add-on's single worker and CLI threads.

    ``on_retry(error, wait_s)`` (a constructor argument, also an attribute a caller may set),
    when not ``None``, is called in the calling thread before every retry sleep (by business
    code, connection failure, or a create posted again), so a caller such as the batch
    runner can see pressure (1303) that the retries otherwise hide.

    ``before_request(request)``, when given, is called in the sending thread before every
    HTTP request this client sends (API calls, uploads through ``http``, downloads and each
    of their redirect hops), whatever the transport or proxy. If it raises, nothing is sent
    and the exception propagates unchanged and is never retried (unless it is an ``httpx``
    or ``KlingError`` one): the add-on refuses requests this way when Blender's online
    access is off.

    ``auto_restore`` (default true) lets the client replace an expired, vanished or doubtful
    session by a new one holding the same points (:meth:`restore`), which Kling charges
    again (init and one add per marked frame). With ``auto_restore=False`` such a call
    raises :class:`RestoreDisabledError` instead, before anything is sent.
    ``on_restore(report)`` (also an attribute) is called in the calling thread after every
    restore with a :class:`RestoreReport` saying what it cost.
    """

    def __init__(
        self,
        access_key: str | None = None,
        secret_key: str | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 4,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_retry: Callable[[KlingError, float], None] | None = None,
        before_request: Callable[[httpx.Request], None] | None = None,
        auto_restore: bool = True,
        on_restore: Callable[[RestoreReport], None] | None = None,
    ) -> None:
        if api_key and api_key.strip():
            self._auth: httpx.Auth = ApiKeyAuth(api_key)
        elif access_key and secret_key:
            self._auth = JwtAuth(access_key, secret_key)
        else:
            raise ValueError(
                "no credentials: pass api_key, or access_key and secret_key "
                "(or set KLINGAI_API_KEY / KLINGAI_ACCESS_KEY + KLINGAI_SECRET_KEY)"
            )
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        # A URL no request can be sent to is refused now, not retried with backoff later.
        if not self.base_url.lower().startswith(("http://", "https://")):
            raise ValueError(
                f"base URL {self.base_url!r} is not an http(s) URL: use e.g. {DEFAULT_BASE_URL}"
            )
        self.max_retries = max_retries
        self._sleep = sleep
        self._clock = clock
        self.on_retry = on_retry
        self.auto_restore = auto_restore
        self.on_restore = on_restore
        self._account_lock = threading.Lock()
        self._account_next = -float("inf")
        self._rng = rng or random.Random()
        hooks = {"request": [before_request]} if before_request is not None else None
        try:
            self._http = httpx.Client(
                base_url=self.base_url,
                auth=self._auth,
                timeout=httpx.Timeout(timeout),
                transport=transport,
                headers={"User-Agent": "kling-elements/0.1"},
                event_hooks=hooks,
            )
        except httpx.InvalidURL as exc:
            raise ValueError(f"base URL {self.base_url!r} is not a valid URL: {exc}") from None
        self._files = httpx.Client(
            follow_redirects=True, timeout=httpx.Timeout(timeout), transport=transport,
            event_hooks=hooks,
        )
        self.sessions: dict[str, SelectionState] = {}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **kwargs: Any) -> Client:
        """Credentials and base URL from ``KLINGAI_*`` variables (API key wins over JWT keys)."""
        env = os.environ if environ is None else environ
        kwargs.setdefault("base_url", env.get("KLINGAI_BASE_URL") or None)
        if (env.get("KLINGAI_API_KEY") or "").strip():
            return cls(api_key=env["KLINGAI_API_KEY"], **kwargs)
        return cls(env.get("KLINGAI_ACCESS_KEY"), env.get("KLINGAI_SECRET_KEY"), **kwargs)

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r}, auth={self._auth!r})"

    @property
    def http(self) -> httpx.Client:
        """The authenticated HTTP client, for extensions such as the sandbox upload."""
        return self._http

    def close(self) -> None:
        self._http.close()
        self._files.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------

    def _read_body(self, response: httpx.Response) -> bytes:
        """The (decoded) body of a streamed answer, read up to ``_MAX_BODY_BYTES`` and no further.

        A Kling answer is a small JSON envelope; a proxy, a wrong base URL or a hostile server
        may send gigabytes. Memory stays bounded: an announced or actual size over the cap
        stops the read at once with :class:`ResponseFormatError` (not retried).
        """
        declared = response.headers.get("content-length", "")
        too_big = (
            f"the answer from {self.base_url} is over the {_MAX_BODY_BYTES} byte limit of a "
            "Kling envelope: check the base URL (is a proxy or a file server answering?)"
        )
        if declared.isdigit() and int(declared) > _MAX_BODY_BYTES:
            raise ResponseFormatError(too_big, http_status=response.status_code)
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > _MAX_BODY_BYTES:
                raise ResponseFormatError(too_big, http_status=response.status_code)
            chunks.append(chunk)
        return b"".join(chunks)

    def _parse(self, status_code: int, content: bytes) -> Any:
        """The envelope's ``data``, or the exception its code calls for."""
        request_id = None
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
                f"the server at {self.base_url} did not answer with Kling's JSON envelope "
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
    ) -> Any:
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
                with self._http.stream(method, path, json=body, params=params) as response:
                    content = self._read_body(response)
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
                    return self._parse(response.status_code, content)
                except ServerError as exc:
                    if not idempotent or (exc.code is not None and not is_retryable_code(exc.code)):
                        raise
                    error = exc
                except KlingError as exc:
                    if not is_retryable_code(exc.code):
                        raise
                    error = exc
                headers = dict(response.headers)
            if attempt >= self.max_retries:
                raise error
            wait = retry_wait(attempt, headers, self._rng, minimum=min_wait_s(error.code))
            if wait is None:
                raise error
            wait = max(wait, min_wait)
            log.debug("retrying %s %s in %.2fs after: %s", method, path, wait, error)
            if self._pause(error, wait, cancel):
                raise error
            attempt += 1

    def _pause(self, error: KlingError, wait: float,
               cancel: threading.Event | None = None) -> bool:
        """Tell ``on_retry`` about the coming retry, then wait ``wait`` seconds.

        Returns True when ``cancel`` was set (before or during the wait). With the default
        ``sleep`` the wait is ``cancel.wait``, which a cancel ends at once; an injected
        ``sleep`` (a test's clock, a caller's scheduler) runs as is and ``cancel`` is read after.
        """
        hook = self.on_retry
        if hook is not None:
            hook(error, wait)
        if cancel is not None and self._sleep is time.sleep:
            return cancel.wait(wait)
        self._sleep(wait)
        return cancel is not None and cancel.is_set()

    # -- selection -------------------------------------------------------------------------

    @staticmethod
    def _check_rejection(data: Any, what: str) -> None:
        status = data.get("status", 0) if isinstance(data, dict) else 0
        if status:
            raise RejectedError(
                f"Kling rejected the {what} (rejection status {status}): check the clip meets "
                "the rules (length, size, fps) and try another frame",
                status=int(status), code=0,
            )

    def _init(self, field: str, value: str) -> InitResult:
        # Retried like a read: a replayed init at worst leaves an unused session behind.
        data = self._request("POST", f"{API}/init-selection", body={field: value})
        self._check_rejection(data, "video")
        return InitResult.from_api(data)

    def init_selection(
        self, *, video_url: str | None = None, video_id: str | None = None
    ) -> InitResult:
        """Start a 24 h selection session on a video (a URL Kling can fetch, or a result id).

        The session's state (``sessions[session_id]``) remembers the video, so the client can
        later move the points to a new session on it (see :meth:`restore`).
        """
        field, value = validate.video_source(video_url, video_id)
        result = self._init(field, value)
        self.sessions[result.session_id] = SelectionState(
            session_id=result.session_id,
            total_frames=result.total_frames,
            fps=result.fps,
            duration_s=result.duration_s,
            video_url=value if field == "video_url" else None,
            video_id=value if field == "video_id" else None,
            spent=result.cost,
            width=result.width or None,
            height=result.height or None,
        )
        return result

    def restore(self, session: str | SelectionState, *, reason: str = "asked for"
                ) -> SelectionState:
        """Move a session's points to a new session on the same video; return its state.

        For a session that expired (24 h) or that Kling no longer knows, and for one whose
        points on Kling's side are in doubt after a lost answer: the old session is abandoned,
        so whatever a lost or late request did to it no longer matters. Every point is
        replayed exactly (bit-identical floats, same order per frame, copies kept) and the
        masks are Kling's fresh answers. The state is updated in place (new ``session_id``,
        start time and masks); the old id keeps naming it in this client, so a caller holding
        it can carry on. Raises ``ValueError`` when the state does not know its video.

        This spends: Kling charges the init and every add again. The deductions reported
        (abandoned attempts included) are added to the state (``charge_restore``), logged at
        INFO and passed to ``on_restore`` as a :class:`RestoreReport`.
        """
        state = session if isinstance(session, SelectionState) else self.sessions[session]
        if state.video_id:
            field, value = "video_id", state.video_id
        elif state.video_url:
            field, value = "video_url", state.video_url
        else:
            raise ValueError(
                f"session {state.session_id} cannot be restored: its video is not known (start "
                "a new session with init_selection)"
            )
        attempt = 0
        cost = Cost()
        while True:
            init = self._init(field, value)
            cost += init.cost
            masks: dict[int, list[dict[str, Any]]] = {}
            try:
                for frame in state.frames():
                    body = {"session_id": init.session_id, "frame_index": frame,
                            "points": [{"x": x, "y": y} for x, y in state.points[frame]]}
                    data = self._request("POST", f"{API}/add-selection", body=body,
                                         idempotent=False)
                    cost += Cost.from_api(data)
                    self._check_rejection(data, f"frame {frame}")
                    masks[frame] = _mask_dicts(
                        SelectionResult.from_api(data).fit_frame(
                            init.frame_size or state.frame_size))
            except (ConnectionFailed, ServerError) as exc:
                # This new session's points are in doubt as well: abandon it too.
                if attempt >= self.max_retries:
                    raise
                self._pause(exc, backoff(attempt, self._rng))
                attempt += 1
                continue
            break
        old = state.session_id
        state.session_id = init.session_id
        state.started_at = time.time()
        state.total_frames, state.fps = init.total_frames, init.fps
        state.duration_s = init.duration_s
        if init.frame_size:  # the same video: a size Kling left out this time stays known
            state.height, state.width = init.frame_size
        state.masks = masks
        state.charge_restore(cost)
        self.sessions[init.session_id] = state
        self.sessions.setdefault(old, state)
        log.info("session %s replaced by %s (%s; %d frame(s) replayed; cost %s)", old,
                 init.session_id, reason, len(masks), cost)
        hook = self.on_restore
        if hook is not None:
            hook(RestoreReport(old, init.session_id, reason, len(masks), cost))
        return state

    def _auto_restore(self, state: SelectionState, reason: str) -> None:
        """Restore ``state`` unless ``auto_restore`` is off (then nothing is sent)."""
        if not self.auto_restore:
            frames = len(state.frames())
            raise RestoreDisabledError(
                f"session {state.session_id} {reason}; restoring it would start a new session "
                f"and replay {frames} marked frame(s) (init + {frames} add(s), charged again), "
                "but this client was made with auto_restore=False: call client.restore(session) "
                "to restore it anyway, or start a new session with init_selection"
            )
        self.restore(state, reason=reason)

    def _expired(self, state: SelectionState) -> bool:
        return state.restorable and state.seconds_left() <= RESTORE_MARGIN_S

    def _in_live_session(
        self, state: SelectionState, send: Callable[[str], Any], what: str,
        *, in_doubt: bool = True,
    ) -> Any:
        """``send(session_id)`` on a session holding exactly ``state``'s points.

        A session expired by our clock is restored first; one Kling says is gone (1203) is
        restored once and the call sent again. A call whose outcome is unknown (timeout,
        dropped connection, 5000-5002) is never replayed on the same session, where its first
        attempt may have taken effect or may still do so: the points are moved to a new
        session (:meth:`restore`) and the call is sent there. With ``in_doubt=False`` (a call
        that changes nothing, already retried by ``_request``) such failures are raised.
        """
        attempt = 0
        restored_after_404 = False
        while True:
            if self._expired(state):
                self._auto_restore(state, "expired (sessions last 24 h)")
            try:
                return send(state.session_id)
            except NotFoundError:
                if not state.restorable or restored_after_404:
                    raise
                restored_after_404 = True
                log.info("session %s is gone on the server: restoring it", state.session_id)
                self._auto_restore(state, "is gone on the server (1203)")
            except (ConnectionFailed, ServerError) as exc:
                if not in_doubt:
                    raise
                if not state.restorable:
                    raise _in_doubt(exc, what) from None
                if attempt >= self.max_retries:
                    raise
                if not self.auto_restore:
                    self._auto_restore(state, f"may or may not have taken the {what} whose "
                                              f"answer was lost ({exc.message})")
                self._pause(exc, backoff(attempt, self._rng))
                attempt += 1
                self.restore(state, reason=f"the answer to a {what} was lost")

    def _selection_call(
        self, endpoint: str, session_id: str, frame_index: int, points: Sequence[object]
    ) -> SelectionResult:
        state = self.sessions.get(session_id)
        validate.frame_index(frame_index, state.total_frames if state else None)
        exact = validate.points(points)
        adding = endpoint == "add-selection"
        if state is not None:
            if adding:
                state.check_add(frame_index, exact)
            else:
                exact = state.exact_points(frame_index, exact)

        def send(live_id: str) -> Any:
            body = {
                "session_id": live_id,
                "frame_index": frame_index,
                "points": [{"x": x, "y": y} for x, y in exact],
            }
            # Not idempotent: a replayed add would add the points twice (Kling keeps copies).
            data = self._request("POST", f"{API}/{endpoint}", body=body, idempotent=False)
            self._check_rejection(data, f"frame {frame_index}")
            return data

        if state is None:
            try:
                data = send(session_id)
            except (ConnectionFailed, ServerError) as exc:
                raise _in_doubt(exc, endpoint) from None
        else:
            data = self._in_live_session(state, send, endpoint)
        result = SelectionResult.from_api(data)
        if state is not None:
            state.charge(result.cost)  # charged even if the masks below are refused
        result = result.fit_frame(state.frame_size if state else None)
        if state is not None:
            state.record(frame_index, exact, _mask_dicts(result), added=adding)
        return result

    def add_selection(
        self, session_id: str, frame_index: int, points: Sequence[object]
    ) -> SelectionResult:
        """Mark points (normalized ``(x, y)``, top-left origin) on one frame; returns its masks.

        With the session's state known (started by this client, or put in ``sessions``), an
        expired session is restored first, and a lost answer moves the points to a new session
        before the points are sent again, so they are never added twice. Without it, a lost
        answer raises (the points may or may not have been added).
        """
        return self._selection_call("add-selection", session_id, frame_index, points)

    def delete_selection(
        self, session_id: str, frame_index: int, points: Sequence[object]
    ) -> SelectionResult:
        """Remove points added earlier; they must be exactly the ones sent (bit-identical).

        Lost answers and expiry are handled as for :meth:`add_selection`.
        """
        return self._selection_call("delete-selection", session_id, frame_index, points)

    def clear_selection(self, session_id: str) -> Cost:
        """Remove every point on every frame of the session; return the deduction reported.

        A session that expired (or that Kling no longer knows) is replaced by a new, empty
        one, which is what clearing asks for. So is one whose clear lost its answer: sent
        again, the first attempt could still arrive after the next clicks and wipe them.
        Such a replacement is a restore (an init, charged; see :meth:`restore`), and its
        cost is what is returned.
        """
        state = self.sessions.get(session_id)

        def replace(reason: str) -> Cost:
            assert state is not None
            if not self.auto_restore:
                self._auto_restore(state, reason)  # raises before anything changes
            before = state.restore_spent
            state.clear()
            self.restore(state, reason=reason)
            return state.restore_spent - before

        if state is not None and self._expired(state):
            return replace("expired (sessions last 24 h)")
        try:
            data = self._request("POST", f"{API}/clear-selection", idempotent=False,
                                 body={"session_id": state.session_id if state else session_id})
        except NotFoundError:
            if state is None or not state.restorable:
                raise
            return replace("is gone on the server (1203)")
        except (ConnectionFailed, ServerError) as exc:
            if state is None or not state.restorable:
                raise _in_doubt(exc, "clear-selection") from None
            return replace(f"may or may not have been cleared: the answer was lost ({exc.message})")
        self._check_rejection(data, "selection")
        cost = Cost.from_api(data)
        if state is not None:
            state.charge(cost)
            state.clear()
        return cost

    def preview_selection(self, session_id: str) -> PreviewResult:
        """URLs of the video with the tracked masks drawn in, its cover and the tracking file.

        An expired session is restored first (see :meth:`add_selection`).
        """
        state = self.sessions.get(session_id)

        def send(live_id: str) -> Any:
            data = self._request("POST", f"{API}/preview-selection",
                                 body={"session_id": live_id})
            self._check_rejection(data, "selection")
            return data

        if state is None:
            data = send(session_id)
        else:
            data = self._in_live_session(state, send, "preview-selection", in_doubt=False)
        result = PreviewResult.from_api(data)
        if state is not None:
            state.charge(result.cost)
        return result

    # -- tasks -----------------------------------------------------------------------------

    def build_task_body(
        self,
        *,
        session_id: str,
        edit_mode: str,
        prompt: str,
        images: Sequence[ImageInput] = (),
        negative_prompt: str | None = None,
        mode: str = "std",
        duration: str | int | None = None,
        watermark: bool = False,
        callback_url: str | None = None,
        external_task_id: str | None = None,
        model_name: str | None = None,
    ) -> dict[str, Any]:
        """The validated JSON body of a create call (images converted); sends nothing.

        The body always carries a ``duration``: Kling applies "5" when it is left out, which
        cuts a 7-10 s input. It is ``duration`` if given (checked against the session's
        length when known), else derived from the session's length; a session this client
        does not know needs ``duration`` (else :class:`ValidationError`).
        """
        if not session_id:
            raise validate.ValidationError("session_id is required: call init_selection first")
        validate.edit_mode(edit_mode)
        images = list(images)
        validate.image_count(edit_mode, len(images))
        validate.prompt(prompt, len(images))
        for advice in validate.prompt_advice(prompt):
            log.warning("%s (sent as it is)", advice)
        negative = validate.negative_prompt(negative_prompt)
        if negative:
            validate.prompt(negative, len(images), field="negative_prompt")
        validate.mode(mode)
        state = self.sessions.get(session_id)
        if state is not None:  # restored sessions keep answering to their first id
            session_id = state.session_id
        chosen = validate.duration(duration, state.duration_s if state else None)
        if state is not None and edit_mode in ("swap", "removal") and not state.frames():
            raise validate.ValidationError(
                f"{edit_mode} needs a marked selection: add points on the element first"
            )
        image_list = []
        for number, image in enumerate(images, start=1):
            if isinstance(image, str) and image.lower().startswith(("http://", "https://")):
                image_list.append({"image": image})
            elif isinstance(image, str) and image.lower().startswith("data:"):
                raise validate.ValidationError(
                    f"image {number} is a data: URL; pass a file path, bytes or an http(s) URL"
                )
            else:
                image_list.append({"image": prepare_image(image, label=f"image {number}")})
        if callback_url and not callback_url.lower().startswith(("http://", "https://")):
            raise validate.ValidationError(f"callback_url {callback_url!r} is not an http(s) URL")
        if external_task_id is not None and (
            not isinstance(external_task_id, str) or "/" in external_task_id
        ):
            raise validate.ValidationError(
                f"external_task_id {external_task_id!r} must be a string without '/': the "
                "task is looked up by it if an answer is lost"
            )
        if chosen is None:
            raise validate.ValidationError(
                f"the length of session {session_id!r} is unknown to this client: pass "
                "duration '5' (input 2-5 s) or '10' (input 7-10 s); Kling defaults to 5 s "
                "and would cut a 7-10 s clip"
            )
        body: dict[str, Any] = {
            "session_id": session_id,
            "edit_mode": edit_mode,
            "prompt": prompt,
            "mode": mode,
            "external_task_id": external_task_id or f"ke-{uuid.uuid4().hex}",
        }
        if image_list:
            body["image_list"] = image_list
        if negative:
            body["negative_prompt"] = negative
        body["duration"] = chosen
        if watermark:
            body["watermark_info"] = {"enabled": True}
        if callback_url:
            body["callback_url"] = callback_url
        if model_name:
            body["model_name"] = model_name
        return body

    def create_task(self, **kwargs: Any) -> Task:
        """Create the edit task (this spends credits); see ``build_task_body`` for arguments.

        The body, with its ``external_task_id``, is built once. A POST whose answer is lost
        (timeout, reset, 5xx) is followed by a lookup of that id: the task found is
        returned; only a "does not exist" answer allows posting again.
        """
        body = self.build_task_body(**kwargs)
        return self.submit_task(body)

    def submit_task(self, body: dict[str, Any], *, slot_wait_s: float = 0.0,
                    cancel: threading.Event | None = None) -> Task:
        """POST a body from ``build_task_body`` with the never-pay-twice protocol.

        After an unknown outcome (timeout, dropped connection, 5000-5002) the task is looked
        up by its ``external_task_id`` before anything is posted again. A request that timed
        out may still arrive late, so a re-post can be refused because the first one created
        the task after all (the id is taken, or its credits are): any refusal of a re-post
        is therefore looked up too, and the task found is returned.

        A 1303 (every concurrency slot of the account is taken; a running task holds one
        until it ends) or 1302 that outlasts the usual retries is retried for up to
        ``slot_wait_s`` seconds in all, at the longest backoff: it clears by waiting, and a
        refusal created nothing.

        With the session's state known (``sessions``), a session expired by our clock is
        restored first and one Kling says is gone (1203, which created nothing) is restored
        once and the same body, with its ``external_task_id``, posted on the new session.

        ``cancel``, set from any thread, stops the attempt: no POST is sent once it is seen
        set, a wait between attempts ends at once, and :class:`CreateCancelled` is raised;
        its ``may_exist`` is False only when no POST sent so far can have created the task.
        A POST already in flight is not interrupted: the task it creates is returned.
        """
        external_id = body["external_task_id"]
        body = dict(body)  # a restored session changes the id sent, not the caller's body
        attempt = 0
        throttled_since: float | None = None
        answer_lost = False
        restored_after_404 = False
        state = self.sessions.get(body["session_id"])
        if state is not None:
            if self._expired(state):
                self._auto_restore(state, "expired (sessions last 24 h)")
            body["session_id"] = state.session_id

        def cancelled() -> CreateCancelled:
            if answer_lost:
                why = ("after an answer was lost: the task may still appear, so keep looking "
                       "it up by its external_task_id")
            else:
                why = "before Kling accepted it: no task was created and nothing was charged"
            return CreateCancelled(f"the create call {external_id!r} was cancelled {why}",
                                   external_task_id=external_id, may_exist=answer_lost)

        while True:
            if cancel is not None and cancel.is_set():
                raise cancelled()
            try:
                data = self._request("POST", API, body=body, idempotent=False, cancel=cancel)
                return Task.from_api(data)
            except (ConnectionFailed, ServerError) as exc:
                failure: KlingError = exc
                answer_lost = True
            except KlingError as exc:
                if attempt > 0:
                    try:
                        return self.get_task(external_id)
                    except NotFoundError:
                        pass
                if (isinstance(exc, NotFoundError) and not restored_after_404
                        and state is not None and state.restorable):
                    # The session is gone and no task exists: post the same body (same
                    # external_task_id) on a new session holding the same points.
                    restored_after_404 = True
                    log.info("session %s is gone on the server: restoring it before the "
                             "create", state.session_id)
                    self._auto_restore(state, "is gone on the server (1203)")
                    body["session_id"] = state.session_id
                    if cancel is not None and cancel.is_set():
                        raise cancelled() from exc
                    continue
                if not isinstance(exc, RateLimitError):
                    raise
                if cancel is not None and cancel.is_set():
                    raise cancelled() from exc
                now = self._clock()
                throttled_since = now if throttled_since is None else throttled_since
                wait = max(backoff(self.max_retries, self._rng), min_wait_s(exc.code))
                if now - throttled_since + wait > slot_wait_s:
                    raise
                log.debug("no free task slot for %s; waiting %.1f s", external_id, wait)
                if self._pause(exc, wait, cancel):
                    raise cancelled() from exc
                continue
            # The outcome is unknown, also after the last attempt: look before giving up.
            try:
                return self.get_task(external_id)
            except NotFoundError:
                if attempt >= self.max_retries:
                    raise failure from None
                log.debug("task %s was not created; posting again", external_id)
            if self._pause(failure, backoff(attempt, self._rng), cancel):
                raise cancelled() from failure
            attempt += 1

    def get_task(self, task_id: str) -> Task:
        """One task by its ``task_id`` or the caller's ``external_task_id``."""
        if not task_id or "/" in task_id:
            raise validate.ValidationError(f"task id {task_id!r} is empty or contains '/'")
        # Caller-chosen external ids may hold '?', '#' or '%': quoted, they stay one segment.
        return Task.from_api(self._request("GET", f"{API}/{quote(task_id, safe='')}"))

    def list_tasks(self, page: int = 1, page_size: int = 30) -> list[Task]:
        """The account's tasks, newest first, one page at a time."""
        validate.page(page, page_size)
        data = self._request("GET", API, params={"pageNum": page, "pageSize": page_size})
        if not isinstance(data, list):
            raise ResponseFormatError("data of the task list is not an array")
        return [Task.from_api(item) for item in data]

    # -- account -----------------------------------------------------------------------------

    def account_costs(
        self,
        start: datetime | float | None = None,
        end: datetime | float | None = None,
        *,
        resource_pack_name: str | None = None,
    ) -> AccountCosts:
        """The account's resource packs and what they have left (free to call).

        ``start`` and ``end`` (datetimes, naive meaning local time, or Unix seconds) bound the
        query; they default to the year up to now. Kling allows one such query per second:
        calls from this client are spaced at least that far apart, and a rate-limit refusal
        is retried after at least a second. ``remaining`` may lag the deductions by up to
        12 h (Kling's note), so it can be higher than what the latest answers imply.
        """
        end_ms = _unix_ms(end, "end") if end is not None else int(time.time() * 1000)
        start_ms = (_unix_ms(start, "start") if start is not None
                    else end_ms - int(ACCOUNT_DEFAULT_SPAN_S * 1000))
        if start_ms >= end_ms:
            raise validate.ValidationError(
                f"start ({start_ms} ms) must be before end ({end_ms} ms): swap them")
        params: dict[str, Any] = {"start_time": start_ms, "end_time": end_ms}
        if resource_pack_name:
            params["resource_pack_name"] = resource_pack_name
        with self._account_lock:
            pause = self._account_next - self._clock()
            if pause > 0:
                self._sleep(pause)
            try:
                data = self._request("GET", ACCOUNT_COSTS, params=params,
                                     min_wait=ACCOUNT_MIN_INTERVAL_S)
            finally:
                self._account_next = self._clock() + ACCOUNT_MIN_INTERVAL_S
        return AccountCosts.from_api(data)

    def wait(
        self,
        task_id: str,
        timeout: float = 900.0,
        poll_interval: float | None = None,
        on_update: Callable[[Task], None] | None = None,
        inbox: TaskInbox | None = None,
    ) -> Task:
        """Wait until the task ends; return it on success.

        Without ``inbox``, polls on ``_poll_schedule`` (or every ``poll_interval`` s). With a
        callback inbox (``kling_elements.callbacks``), waits for the task's deliveries
        instead and polls only as a fallback: not before ``CALLBACK_GRACE_S``, then every
        ``CALLBACK_SAFETY_POLL_S`` while deliveries about the task arrive, on the plain
        schedule if none did. A final delivery is confirmed by one query before it is
        believed (a delivery may be forged, or ahead of the API); one the query contradicts
        makes the rest of the wait ignore the inbox.

        ``on_update`` is called once per observed status change (the first observation
        counts). Raises :class:`TaskFailedError` with Kling's ``task_status_msg`` on
        ``failed`` and :class:`TaskTimeoutError` (a ``TimeoutError``) at the deadline.
        Transient errors while polling do not end the wait before the deadline.
        """
        start = self._clock()
        deadline = start + timeout
        last_status: str | None = None
        heard_status: str | None = None  # the latest status the inbox gave
        confirm_at: float | None = None  # when to query a final delivery
        last_poll: float | None = None
        task: Task | None = None

        def next_poll() -> float:
            if inbox is not None:
                if confirm_at is not None:
                    return confirm_at
                if inbox.heard(task_id):
                    return (last_poll if last_poll is not None else start) + \
                        CALLBACK_SAFETY_POLL_S
                if last_poll is None:
                    return start + CALLBACK_GRACE_S
            if last_poll is None:
                return start
            if poll_interval is not None:
                return last_poll + poll_interval
            return last_poll + _poll_schedule(last_poll - start)

        while True:
            now = self._clock()
            due = next_poll()
            if now >= due or now >= deadline:
                try:
                    polled = self.get_task(task_id)
                except (ConnectionFailed, ServerError, RateLimitError) as exc:
                    log.debug("poll of %s failed, will retry: %s", task_id, exc)
                    polled = None
                # counted from its end: a poll slowed by retries is not followed at once
                last_poll = self._clock()
                if polled is None:
                    if confirm_at is not None:
                        confirm_at = last_poll + CONFIRM_RETRY_S
                else:
                    task = polled
                    if task.status != last_status:
                        last_status = task.status
                        if on_update:
                            on_update(task)
                    if task.status == "succeed":
                        return task
                    if task.status == "failed":
                        raise TaskFailedError(
                            f"task {task.task_id} failed: {task.status_msg or 'no reason given'}",
                            task=task,
                        )
                    if confirm_at is not None:
                        log.warning("task %s: a callback said %s but Kling says %s; polling "
                                    "instead", task_id, heard_status, task.status)
                        inbox, confirm_at = None, None
                if last_poll >= deadline:
                    raise TaskTimeoutError(
                        f"task {task_id} is still {last_status or 'unknown'} after "
                        f"{timeout:g} s; it may still finish: wait again or check its status "
                        "later",
                        task=task,
                    )
                now, due = last_poll, next_poll()
            pause = max(min(due, deadline) - now, 0.0)
            if inbox is None:
                self._sleep(pause)
                continue
            delivered = inbox.wait_for(task_id, pause, beyond=heard_status)
            if delivered is None:
                continue
            heard_status = delivered.status
            if delivered.done:
                confirm_at = self._clock()  # one query before believing it
            elif STATUS_RANK.get(delivered.status, 1) > STATUS_RANK.get(last_status or "", -1):
                last_status = delivered.status
                if on_update:
                    on_update(delivered)

    def download(
        self,
        url: str,
        dest_path: str | os.PathLike,
        on_progress: ProgressCallback | None = None,
        *,
        overwrite: bool = False,
    ) -> Path:
        """Stream a result file to ``dest_path`` atomically, resuming after broken connections.

        An existing ``dest_path`` is refused (``ValidationError``, nothing sent) unless
        ``overwrite`` is true; see :func:`kling_elements.download.download`.
        """
        return _download(
            url, dest_path, overwrite=overwrite, on_progress=on_progress, http=self._files,
            max_retries=self.max_retries, sleep=self._sleep, rng=self._rng,
        )
