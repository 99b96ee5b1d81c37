"""Edit tasks, with no I/O: the create body, the never-pay-twice submit, lookups, the wait
and its poll schedule, and the account query.

Guarantees (see ``kling_elements.client``): a create always carries an
``external_task_id``, and after a lost answer the task is looked up by it before anything
is posted again; a 1203 on create (the session is gone: nothing was created) restores the
session and posts the same body, with the same id, on the new one.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .. import validate
from ..errors import (
    ConnectionFailed,
    CreateCancelled,
    KlingError,
    NotFoundError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    TaskFailedError,
    TaskTimeoutError,
    min_wait_s,
)
from ..media import ImageInput, prepare_image
from ..models import STATUS_RANK, AccountCosts, Task
from ..retry import backoff
from .protocol import ACCOUNT_COSTS, API, Flow, Listen, Pause, Sleep
from .sessions import SessionFlows

if TYPE_CHECKING:
    from ..callbacks import TaskInbox

__all__ = [
    "ACCOUNT_MIN_INTERVAL_S",
    "CALLBACK_GRACE_S",
    "CALLBACK_SAFETY_POLL_S",
    "CONFIRM_RETRY_S",
    "EARLY_POLLS_S",
    "TAIL_POLL_S",
    "PollPlan",
    "TaskFlows",
    "image_list_of",
    "poll_schedule",
]

log = logging.getLogger("kling_elements")

# Kling asks for at most one account query per second (QPS <= 1).
ACCOUNT_MIN_INTERVAL_S = 1.0

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


def poll_schedule(elapsed: float) -> float:
    """Seconds to sleep before the next poll, ``elapsed`` seconds into a wait."""
    for at in EARLY_POLLS_S:
        if elapsed < at - 0.5:
            return at - elapsed
    return TAIL_POLL_S


@dataclass(frozen=True)
class PollPlan:
    """The poll timing a wait follows (the defaults above, or a caller's)."""

    schedule: Callable[[float], float] = poll_schedule
    grace_s: float = CALLBACK_GRACE_S
    safety_poll_s: float = CALLBACK_SAFETY_POLL_S
    confirm_retry_s: float = CONFIRM_RETRY_S


_AFTER_IMAGE_FILES = ("callback_url", "external_task_id", "session_length")


def image_list_of(images: Sequence[ImageInput]) -> list[dict[str, str]]:
    """The ``image_list`` of a create body: URLs as given, files and pixels read, checked and
    converted (``media.prepare_image``, which raises ``ValidationError``)."""
    image_list = []
    for number, image in enumerate(images, start=1):
        if isinstance(image, str) and image.lower().startswith(("http://", "https://")):
            image_list.append({"image": image})
        else:
            image_list.append({"image": prepare_image(image, label=f"image {number}")})
    return image_list


class TaskFlows(SessionFlows):
    """The task endpoints as flows, on top of the session flows (a create may restore)."""

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
        images = list(images)
        state = self.sessions.get(session_id)
        if state is not None:  # restored sessions keep answering to their first id
            session_id = state.session_id
        problems = validate.task(
            edit_mode=edit_mode, prompt=prompt, images=images, negative_prompt=negative_prompt,
            mode=mode, duration=duration, session_duration_s=state.duration_s if state else None,
            marked_frames=len(state.frames()) if state else None, callback_url=callback_url,
            external_task_id=external_task_id, session_id=session_id,
        )
        # The first problem is raised, as the checks once ran one by one: image files are
        # read (and may be refused) before the problems that came after them.
        early = [p for p in problems if p.field not in _AFTER_IMAGE_FILES]
        if early:
            raise validate.ValidationError(early[0].message)
        for advice in validate.prompt_advice(prompt):
            log.warning("%s (sent as it is)", advice)
        image_list = image_list_of(images)
        if problems:
            raise validate.ValidationError(problems[0].message)
        negative = negative_prompt or None
        chosen = validate.duration(duration, state.duration_s if state else None)
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

    def _submit_task(self, body: dict[str, Any], slot_wait_s: float,
                     cancel: threading.Event | None) -> Flow[Task]:
        external_id = body["external_task_id"]
        body = dict(body)  # a restored session changes the id sent, not the caller's body
        attempt = 0
        throttled_since: float | None = None
        answer_lost = False
        restored_after_404 = False
        state = self.sessions.get(body["session_id"])
        if state is not None:
            if self._expired(state):
                yield from self._auto_restore(state, "expired (sessions last 24 h)")
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
                data = yield from self._request("POST", API, body=body, idempotent=False,
                                                cancel=cancel)
                return Task.from_api(data)
            except (ConnectionFailed, ServerError) as exc:
                failure: KlingError = exc
                answer_lost = True
            except KlingError as exc:
                if attempt > 0:
                    try:
                        return (yield from self._get_task(external_id))
                    except NotFoundError:
                        pass
                if (isinstance(exc, NotFoundError) and not restored_after_404
                        and state is not None and state.restorable):
                    # The session is gone and no task exists: post the same body (same
                    # external_task_id) on a new session holding the same points.
                    restored_after_404 = True
                    log.info("session %s is gone on the server: restoring it before the "
                             "create", state.session_id)
                    yield from self._auto_restore(state, "is gone on the server (1203)")
                    body["session_id"] = state.session_id
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
                if (yield Pause(exc, wait, cancel)):
                    raise cancelled() from exc
                continue
            # The outcome is unknown, also after the last attempt: look before giving up.
            try:
                return (yield from self._get_task(external_id))
            except NotFoundError:
                if attempt >= self.max_retries:
                    raise failure from None
                log.debug("task %s was not created; posting again", external_id)
            if (yield Pause(failure, backoff(attempt, self._rng), cancel)):
                raise cancelled() from failure
            attempt += 1

    def _get_task(self, task_id: str) -> Flow[Task]:
        if not task_id or "/" in task_id:
            raise validate.ValidationError(f"task id {task_id!r} is empty or contains '/'")
        # Caller-chosen external ids may hold '?', '#' or '%': quoted, they stay one segment.
        data = yield from self._request("GET", f"{API}/{quote(task_id, safe='')}")
        return Task.from_api(data)

    def _list_tasks(self, page: int, page_size: int) -> Flow[list[Task]]:
        validate.page(page, page_size)
        data = yield from self._request("GET", API,
                                        params={"pageNum": page, "pageSize": page_size})
        if not isinstance(data, list):
            raise ResponseFormatError("data of the task list is not an array")
        return [Task.from_api(item) for item in data]

    def _account_costs(self, params: dict[str, Any]) -> Flow[AccountCosts]:
        """One account query, at least ``ACCOUNT_MIN_INTERVAL_S`` after the previous one
        (the caller holds the client's account lock around the whole flow)."""
        pause = self._account_next - self._clock()
        if pause > 0:
            yield Sleep(pause)
        try:
            data = yield from self._request("GET", ACCOUNT_COSTS, params=params,
                                            min_wait=ACCOUNT_MIN_INTERVAL_S)
        finally:
            self._account_next = self._clock() + ACCOUNT_MIN_INTERVAL_S
        return AccountCosts.from_api(data)

    _account_next: float

    def _wait(
        self,
        task_id: str,
        timeout: float,
        poll_interval: float | None,
        on_update: Callable[[Task], None] | None,
        inbox: TaskInbox | None,
        plan: PollPlan,
    ) -> Flow[Task]:
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
                        plan.safety_poll_s
                if last_poll is None:
                    return start + plan.grace_s
            if last_poll is None:
                return start
            if poll_interval is not None:
                return last_poll + poll_interval
            return last_poll + plan.schedule(last_poll - start)

        while True:
            now = self._clock()
            due = next_poll()
            if now >= due or now >= deadline:
                try:
                    polled = yield from self._get_task(task_id)
                except (ConnectionFailed, ServerError, RateLimitError) as exc:
                    log.debug("poll of %s failed, will retry: %s", task_id, exc)
                    polled = None
                # counted from its end: a poll slowed by retries is not followed at once
                last_poll = self._clock()
                if polled is None:
                    if confirm_at is not None:
                        confirm_at = last_poll + plan.confirm_retry_s
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
                yield Sleep(pause)
                continue
            delivered = yield Listen(inbox, task_id, pause, heard_status)
            if delivered is None:
                continue
            heard_status = delivered.status
            if delivered.done:
                confirm_at = self._clock()  # one query before believing it
            elif STATUS_RANK.get(delivered.status, 1) > STATUS_RANK.get(last_status or "", -1):
                last_status = delivered.status
                if on_update:
                    on_update(delivered)
