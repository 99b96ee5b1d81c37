"""The sandbox's outgoing task callbacks: both formats, signed, retried, faulted.

For every status a task reaches (the ticker calls :meth:`WebhookSender.queue` once per status,
in order), one message per configured format is POSTed to the task's ``callback_url``
(already checked to be loopback; redirects are not followed, proxies ignored):

* with ``webhook_secret`` set, signed with the Standard Webhooks headers (``webhook-id``
  fixed per message, ``webhook-timestamp`` the real time of each send: the sandbox clock's
  offset models task progress, not a skewed sender);
* a receiver failure (no connection, or not 2xx) is retried after each of
  ``callback_retry_s`` sandbox seconds, then the message is logged and dropped;
* ``callback`` fault rules lose, repeat, delay and reorder messages (see ``faults``).

Callbacks are hints: receivers deduplicate, order and confirm with a query.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass

import httpx

from ..callbacks.signing import sign
from .config import SandboxConfig
from .state import State, Task
from .tasks import callback_payload, task_object

__all__ = ["REORDER_MAX_HOLD_S", "WebhookSender", "new_format"]

log = logging.getLogger("kling_elements.sandbox")
REORDER_MAX_HOLD_S = 10.0  # a held message whose task changes no more is sent after this
_IDLE_S = 0.5
_NEW_STATUS = {"succeed": "succeeded"}


def new_format(legacy: dict) -> dict:
    """The newer callback body for the same change as a legacy one."""
    billing = {k: v for k, v in legacy.items() if k.startswith("final_")}
    return {
        "id": legacy["task_id"],
        "status": _NEW_STATUS.get(legacy["task_status"], legacy["task_status"]),
        "message": legacy["task_status_msg"],
        "create_time": legacy["created_at"],
        "update_time": legacy["updated_at"],
        "external_id": legacy["task_info"]["external_task_id"],
        "outputs": [{"type": "video", **video} for video in legacy["task_result"]["videos"]],
        "billing": [billing] if billing else [],
    }


@dataclass(eq=False)
class _Message:
    url: str
    body: bytes
    webhook_id: str
    task_id: str
    status: str
    sends: int = 0
    failures: int = 0
    extra_copies: int = 0
    lose_ack: bool = False


class WebhookSender:
    """One thread sending due messages in order of their due time (sandbox clock)."""

    def __init__(self, state: State, config: SandboxConfig) -> None:
        self.state = state
        self.config = config
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, _Message]] = []
        self._held: list[tuple[float, _Message]] = []  # (release at, message) by reorder
        self._order = itertools.count()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="sandbox-callbacks",
                                         daemon=True)
        state.clock.on_change(self._nudge)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _nudge(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # -- queueing -------------------------------------------------------------------------

    def _bodies(self, task: Task, status: str, updated_at: float) -> list[dict]:
        legacy = callback_payload(self.state, task, status, updated_at)
        view = task_object(self.state, task, self.state.clock.now(), self.config.task_seconds)
        legacy.update({k: v for k, v in view.items() if k.startswith("final_")})
        kind = self.config.callback_format
        return ([legacy] if kind != "new" else []) + ([new_format(legacy)] if kind != "legacy"
                                                      else [])

    def queue(self, task: Task, status: str, updated_at: float) -> None:
        """Queue the messages for ``task`` having reached ``status`` (faults applied)."""
        if not task.callback_url:
            return
        now = self.state.clock.now()
        for body in self._bodies(task, status, updated_at):
            message = _Message(url=task.callback_url, body=json.dumps(body).encode(),
                               webhook_id=f"msg_{uuid.uuid4().hex}", task_id=task.id,
                               status=status)
            rule = self.state.faults.take("callback", status)
            with self._cond:
                if rule is not None and rule.drop == "before_commit":
                    log.info("callback %s for task %s lost (fault rule)", status, task.id)
                    continue
                if rule is not None and rule.reorder:
                    self._held.append((now + REORDER_MAX_HOLD_S, message))
                    continue
                message.lose_ack = rule is not None and rule.drop == "after_commit"
                message.extra_copies = (rule.repeat or 0) if rule is not None else 0
                delay = (rule.delay_s or 0.0) if rule is not None else 0.0
                self._schedule(now + delay, message)

    def _schedule(self, at: float, message: _Message) -> None:
        heapq.heappush(self._due, (at, next(self._order), message))
        self._cond.notify_all()

    def _release_held(self, now: float, after: _Message | None = None) -> None:
        """Send held messages now: those overtaken by a later status of their task (``after``
        was just sent), and those held for longer than ``REORDER_MAX_HOLD_S``."""
        keep = []
        for release_at, held in self._held:
            overtaken = after is not None and held.task_id == after.task_id and \
                held.status != after.status
            if overtaken or now >= release_at:
                self._schedule(now, held)
            else:
                keep.append((release_at, held))
        self._held = keep

    # -- sending --------------------------------------------------------------------------

    def _next(self) -> _Message | None:
        with self._cond:
            while not self._stopped:
                now = self.state.clock.now()
                self._release_held(now)
                if self._due and self._due[0][0] <= now:
                    return heapq.heappop(self._due)[2]
                wait = min(self._due[0][0] - now, _IDLE_S) if self._due else _IDLE_S
                self._cond.wait(max(wait, 0.005))
        return None

    def _run(self) -> None:
        with httpx.Client(timeout=5.0, trust_env=False, follow_redirects=False) as http:
            while (message := self._next()) is not None:
                self._send(http, message)

    def _send(self, http: httpx.Client, message: _Message) -> None:
        stamp = int(time.time())
        headers = {"Content-Type": "application/json", "webhook-id": message.webhook_id,
                   "webhook-timestamp": str(stamp)}
        if self.config.webhook_secret:
            headers["webhook-signature"] = sign(self.config.webhook_secret,
                                                message.webhook_id, stamp, message.body)
        message.sends += 1
        try:
            answer = http.post(message.url, content=message.body, headers=headers)
            delivered, why = answer.is_success, f"HTTP {answer.status_code}"
        except httpx.HTTPError as exc:
            delivered, why = False, exc.__class__.__name__
        if message.lose_ack:
            message.lose_ack, delivered, why = False, False, "acknowledgement lost (fault rule)"
        log.debug("callback %s for task %s (send %d): %s", message.status, message.task_id,
                  message.sends, why)
        now = self.state.clock.now()
        with self._cond:
            self._release_held(now, after=message)
            if delivered and message.extra_copies:
                message.extra_copies -= 1
                self._schedule(now, message)
            elif not delivered:
                retries = self.config.callback_retry_s
                if message.failures < len(retries):
                    self._schedule(now + retries[message.failures], message)
                    message.failures += 1
                else:
                    log.warning("callback %s for task %s not delivered after %d attempt(s) "
                                "(%s); dropped", message.status, message.task_id,
                                message.sends, why)
