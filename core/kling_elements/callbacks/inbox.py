"""The inbox: verified, deduplicated, ordered callback deliveries that a wait can block on.

Webhooks are hints that arrive late, twice, out of order or never. :meth:`CallbackInbox.accept`
turns each POST into one :class:`Delivery` and guarantees:

* with secrets configured, only deliveries signed with one of them (Standard Webhooks) and
  stamped within ``tolerance_s`` of this machine's clock are taken; others raise
  :class:`Refused` and change nothing;
* a ``webhook-id`` seen before (a sender's retry, or a replay) and a status a task already
  reached (the same change in the other format, or a repeat) are acknowledged as
  ``duplicate`` and applied once;
* a task never moves backwards: a ``processing`` arriving after ``succeed`` is recorded as
  ``out-of-order`` and not applied;
* with ``record_dir``, every delivery that is not a duplicate is written there as one JSON
  file, atomically (it appears complete or not at all).

The memory of ids is bounded: ids are forgotten once their timestamp leaves the tolerance
window (a replay of them is then refused as stale) and, past ``max_ids``, oldest first.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from ..atomic import write_json_atomic
from ..cost import json_number
from ..models import Task
from .payload import PayloadError, parse, rank
from .signing import TOLERANCE_S, SignatureError, secret_key, verify

__all__ = ["CallbackInbox", "Delivery", "Refused", "TaskInbox"]

MAX_IDS = 10_000


class TaskInbox(Protocol):
    """What ``Client.wait`` needs from an inbox (so tests and benches can bring their own)."""

    def heard(self, key: str) -> bool:
        """Whether any delivery about the task (task id or external id) was applied."""

    def wait_for(self, key: str, timeout: float, *, beyond: str | None = None) -> Task | None:
        """The task as last delivered once its status is not ``beyond``; ``None`` after
        ``timeout`` seconds without such a delivery."""


class Refused(Exception):
    """A delivery not taken; ``status`` is the HTTP answer (400, 401) and ``str`` why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Delivery:
    """One accepted POST: the task it reports and what the inbox did with it.

    ``outcome`` is ``applied`` (the task moved forward), ``duplicate`` (already known) or
    ``out-of-order`` (older than what is known; not applied).
    """

    task: Task
    format: str
    outcome: str
    webhook_id: str
    verified: bool
    received_at: float
    unit_deduction: str = ""


_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


def _plain(value: object) -> object:
    """JSON for what ``json`` cannot write itself: a task's exact deductions (``Decimal``)."""
    if isinstance(value, Decimal):
        return json_number(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _write_atomic(path: Path, data: object) -> None:
    write_json_atomic(path, data, default=_plain)


class CallbackInbox:
    """Thread-safe; one per receiver. ``secrets``: ``whsec_...`` values (several during a
    key rotation); none means deliveries are taken unverified (a wait confirms them with a
    query anyway). ``clock`` gives Unix seconds, for the timestamp check.
    ``on_delivery(delivery)`` runs after each accepted delivery, outside the lock.
    """

    def __init__(
        self,
        secrets: Sequence[str] = (),
        *,
        record_dir: str | os.PathLike | None = None,
        clock: Callable[[], float] = time.time,
        tolerance_s: float = TOLERANCE_S,
        max_ids: int = MAX_IDS,
        on_delivery: Callable[[Delivery], None] | None = None,
    ) -> None:
        self._secrets = [s for s in secrets if s]
        for secret in self._secrets:
            secret_key(secret)  # a malformed secret fails now, not on the first delivery
        self.record_dir = Path(record_dir) if record_dir is not None else None
        if self.record_dir is not None:
            self.record_dir.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._tolerance = tolerance_s
        self._max_ids = max_ids
        self.on_delivery = on_delivery
        self._cond = threading.Condition()
        self._ids: OrderedDict[str, float] = OrderedDict()
        self._tasks: dict[str, Task] = {}  # task id -> latest applied
        self._aliases: dict[str, str] = {}  # external id -> task id
        self._reached: dict[str, set[str]] = {}  # task id -> statuses applied
        self._count = 0
        self.counts = {"applied": 0, "duplicate": 0, "out-of-order": 0, "refused": 0}

    def __repr__(self) -> str:  # secrets never appear
        return (f"CallbackInbox(verified={bool(self._secrets)}, tasks={len(self._tasks)}, "
                f"record_dir={str(self.record_dir) if self.record_dir else None!r})")

    @property
    def verifies(self) -> bool:
        return bool(self._secrets)

    # -- receiving ------------------------------------------------------------------------

    def accept(self, headers: Mapping[str, str], body: bytes) -> Delivery:
        """Verify, parse and apply one POST; the :class:`Delivery`, or :class:`Refused`."""
        now = self._clock()
        lower = {k.lower(): v for k, v in headers.items()}
        webhook_id = lower.get("webhook-id", "").strip()[:200]
        stamp = float(now)
        try:
            if self._secrets:
                webhook_id, timestamp = verify(self._secrets, lower, body, now=now,
                                               tolerance_s=self._tolerance)
                stamp = float(timestamp)
            callback = parse(body)
        except (SignatureError, PayloadError) as exc:
            with self._cond:
                self.counts["refused"] += 1
            raise Refused(401 if isinstance(exc, SignatureError) else 400, str(exc)) from None
        with self._cond:
            outcome = self._apply(callback.task, webhook_id, stamp, now)
            self.counts[outcome] += 1
            self._count += 1
            sequence = self._count
            if outcome == "applied":
                self._cond.notify_all()
        delivery = Delivery(task=callback.task, format=callback.format, outcome=outcome,
                            webhook_id=webhook_id, verified=bool(self._secrets),
                            received_at=now, unit_deduction=callback.unit_deduction)
        if self.record_dir is not None and outcome != "duplicate":
            self._record(delivery, sequence, body)
        if self.on_delivery is not None:
            self.on_delivery(delivery)
        return delivery

    def _apply(self, task: Task, webhook_id: str, stamp: float, now: float) -> str:
        """The outcome of ``task`` arriving now; updates the state (lock held)."""
        while self._ids and next(iter(self._ids.values())) < now - self._tolerance:
            self._ids.popitem(last=False)
        if webhook_id:
            if webhook_id in self._ids:
                return "duplicate"
            self._ids[webhook_id] = stamp
            while len(self._ids) > self._max_ids:
                self._ids.popitem(last=False)
        reached = self._reached.setdefault(task.task_id, set())
        if task.status in reached:
            return "duplicate"
        reached.add(task.status)
        known = self._tasks.get(task.task_id)
        if known is not None and rank(task.status) <= rank(known.status):
            return "out-of-order"
        self._tasks[task.task_id] = task
        if task.external_task_id:
            self._aliases[task.external_task_id] = task.task_id
        return "applied"

    def _record(self, delivery: Delivery, sequence: int, body: bytes) -> None:
        assert self.record_dir is not None
        task = delivery.task
        name = (f"{int(delivery.received_at * 1000):013d}-{sequence:06d}-"
                f"{_SAFE.sub('_', task.task_id)[:64]}-{_SAFE.sub('_', task.status)[:20]}.json")
        try:
            raw: object = json.loads(body)
        except ValueError:
            raw = None
        record = {k: v for k, v in asdict(delivery).items() if k != "task"}
        record.update(task=asdict(task), body=raw)
        _write_atomic(self.record_dir / name, record)

    # -- waiting --------------------------------------------------------------------------

    def latest(self, key: str) -> Task | None:
        """The task (by task id or external id) as last applied, or ``None``."""
        with self._cond:
            return self._latest(key)

    def _latest(self, key: str) -> Task | None:
        return self._tasks.get(key) or self._tasks.get(self._aliases.get(key, ""))

    def heard(self, key: str) -> bool:
        return self.latest(key) is not None

    def wait_for(self, key: str, timeout: float, *, beyond: str | None = None) -> Task | None:
        """Block until the task's delivered status is not ``beyond`` (at most ``timeout`` s)."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            while True:
                task = self._latest(key)
                if task is not None and task.status != beyond:
                    return task
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
