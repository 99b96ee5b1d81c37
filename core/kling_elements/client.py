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

import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from .api import tasks as _tasks
from .api.drivers import SyncDriver
from .api.protocol import API, MAX_BODY_BYTES, unix_ms  # noqa: F401
from .api.sessions import RESTORE_MARGIN_S, RestoreReport  # noqa: F401
from .api.tasks import (  # noqa: F401
    ACCOUNT_MIN_INTERVAL_S,
    CALLBACK_GRACE_S,
    CALLBACK_SAFETY_POLL_S,
    CONFIRM_RETRY_S,
    EARLY_POLLS_S,
    TAIL_POLL_S,
    PollPlan,
    TaskFlows,
)
from .auth import ApiKeyAuth, JwtAuth
from .cost import Cost
from .credentials import resolve_credentials
from .download import ProgressCallback
from .download import download as _download
from .errors import KlingError, ValidationError
from .models import AccountCosts, InitResult, PreviewResult, SelectionResult, Task
from .selection import SelectionState

if TYPE_CHECKING:
    from .callbacks import TaskInbox

__all__ = ["DEFAULT_BASE_URL", "REGIONS", "Client", "RestoreReport"]

REGIONS = {
    "global": "https://api-singapore.klingai.com",
    "china": "https://api-beijing.klingai.com",
}
DEFAULT_BASE_URL = REGIONS["global"]
ACCOUNT_DEFAULT_SPAN_S = 365 * 86400.0
_MAX_BODY_BYTES = MAX_BODY_BYTES
# API, MAX_BODY_BYTES, RESTORE_MARGIN_S and the poll constants lived here before the
# split: they stay importable from here. The poll timing is read from this module at each
# wait (``poll_plan``), so tests and benches that replace these names here keep working.
_poll_schedule = _tasks.poll_schedule


def make_auth(access_key: str | None, secret_key: str | None, api_key: str | None
              ) -> httpx.Auth:
    """The auth for the credentials given (an API key wins over JWT keys)."""
    if api_key and api_key.strip():
        return ApiKeyAuth(api_key)
    if access_key and secret_key:
        return JwtAuth(access_key, secret_key)
    raise ValueError(
        "no credentials: pass api_key, or access_key and secret_key "
        "(or set KLINGAI_API_KEY / KLINGAI_ACCESS_KEY + KLINGAI_SECRET_KEY)"
    )


def checked_base_url(base_url: str | None) -> str:
    """``base_url`` (or the default) without a trailing slash; refused now if it is not
    http(s), rather than retried with backoff later."""
    url = (base_url or DEFAULT_BASE_URL).rstrip("/")
    if not url.lower().startswith(("http://", "https://")):
        raise ValueError(f"base URL {url!r} is not an http(s) URL: use e.g. {DEFAULT_BASE_URL}")
    return url


def account_params(start: datetime | float | None, end: datetime | float | None,
                   resource_pack_name: str | None) -> dict[str, Any]:
    """The query of an account-costs call; ``ValidationError`` before anything is sent."""
    end_ms = unix_ms(end, "end") if end is not None else int(time.time() * 1000)
    start_ms = (unix_ms(start, "start") if start is not None
                else end_ms - int(ACCOUNT_DEFAULT_SPAN_S * 1000))
    if start_ms >= end_ms:
        raise ValidationError(
            f"start ({start_ms} ms) must be before end ({end_ms} ms): swap them")
    params: dict[str, Any] = {"start_time": start_ms, "end_time": end_ms}
    if resource_pack_name:
        params["resource_pack_name"] = resource_pack_name
    return params


def poll_plan() -> PollPlan:
    """The poll timing as this module's names say at the time of the call."""
    return PollPlan(_poll_schedule, CALLBACK_GRACE_S, CALLBACK_SAFETY_POLL_S, CONFIRM_RETRY_S)


class Client(TaskFlows, SyncDriver):
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
        self._auth = make_auth(access_key, secret_key, api_key)
        self.base_url = checked_base_url(base_url)
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
        chosen = resolve_credentials(environ)
        kwargs.setdefault("base_url", chosen.base_url or None)
        if chosen.api_key:
            return cls(api_key=chosen.api_key, **kwargs)
        return cls(chosen.access_key or None, chosen.secret_key or None, **kwargs)

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

    # -- selection -------------------------------------------------------------------------

    def init_selection(
        self, *, video_url: str | None = None, video_id: str | None = None
    ) -> InitResult:
        """Start a 24 h selection session on a video (a URL Kling can fetch, or a result id).

        The session's state (``sessions[session_id]``) remembers the video, so the client can
        later move the points to a new session on it (see :meth:`restore`).
        """
        return self._run(self._init_selection(video_url, video_id))

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
        return self._run(self._restore(session, reason))

    def add_selection(
        self, session_id: str, frame_index: int, points: Sequence[object]
    ) -> SelectionResult:
        """Mark points (normalized ``(x, y)``, top-left origin) on one frame; returns its masks.

        With the session's state known (started by this client, or put in ``sessions``), an
        expired session is restored first, and a lost answer moves the points to a new session
        before the points are sent again, so they are never added twice. Without it, a lost
        answer raises (the points may or may not have been added).
        """
        return self._run(self._selection_call("add-selection", session_id, frame_index, points))

    def delete_selection(
        self, session_id: str, frame_index: int, points: Sequence[object]
    ) -> SelectionResult:
        """Remove points added earlier; they must be exactly the ones sent (bit-identical).

        Lost answers and expiry are handled as for :meth:`add_selection`.
        """
        return self._run(
            self._selection_call("delete-selection", session_id, frame_index, points))

    def clear_selection(self, session_id: str) -> Cost:
        """Remove every point on every frame of the session; return the deduction reported.

        A session that expired (or that Kling no longer knows) is replaced by a new, empty
        one, which is what clearing asks for. So is one whose clear lost its answer: sent
        again, the first attempt could still arrive after the next clicks and wipe them.
        Such a replacement is a restore (an init, charged; see :meth:`restore`), and its
        cost is what is returned.
        """
        return self._run(self._clear_selection(session_id))

    def preview_selection(self, session_id: str) -> PreviewResult:
        """URLs of the video with the tracked masks drawn in, its cover and the tracking file.

        An expired session is restored first (see :meth:`add_selection`).
        """
        return self._run(self._preview_selection(session_id))

    # -- tasks -----------------------------------------------------------------------------

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

        With the session's state known (``sessions``), a session expired by our clock is
        restored first and one Kling says is gone (1203, which created nothing) is restored
        once and the same body, with its ``external_task_id``, posted on the new session.

        A 1303 (every concurrency slot of the account is taken; a running task holds one
        until it ends) or 1302 that outlasts the usual retries is retried for up to
        ``slot_wait_s`` seconds in all, at the longest backoff: it clears by waiting, and a
        refusal created nothing.

        ``cancel``, set from any thread, stops the attempt: no POST is sent once it is seen
        set, a wait between attempts ends at once, and :class:`CreateCancelled` is raised;
        its ``may_exist`` is False only when no POST sent so far can have created the task.
        A POST already in flight is not interrupted: the task it creates is returned.
        """
        return self._run(self._submit_task(body, slot_wait_s, cancel))

    def get_task(self, task_id: str) -> Task:
        """One task by its ``task_id`` or the caller's ``external_task_id``."""
        return self._run(self._get_task(task_id))

    def list_tasks(self, page: int = 1, page_size: int = 30) -> list[Task]:
        """The account's tasks, newest first, one page at a time."""
        return self._run(self._list_tasks(page, page_size))

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
        params = account_params(start, end, resource_pack_name)
        with self._account_lock:
            return self._run(self._account_costs(params))

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
        return self._run(self._wait(task_id, timeout, poll_interval, on_update, inbox,
                                    poll_plan()))

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
