"""The batch runner: many ``workflow.run_edit`` calls at once, within slots and a budget.

``run`` reuses the edit's guarantees rather than adding new ones: each job's progress is in
``DIR/.state/jobs/<name>.json`` (written atomically), so a process killed at any moment and
started again never creates a second task and continues downloads with ``Range``. A job
takes part in the batch through ``run_edit``'s hooks (``_JobSlot``): it holds one of the
``Limiter``'s slots from just before its task is created until the wait for it ends, and
the ``Budget`` may hold it back before anything is sent or before the create.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..client import Client
from ..conform.cache import progress_events
from ..conform.match import match_source
from ..cost import Cost, PriceBook, task_kind
from ..errors import (
    AccountError,
    AuthError,
    ConnectionFailed,
    KlingError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from ..hosting import CachingHost, Host
from ..job_key import match_state
from ..ledger import CostLedger
from ..models import Task
from ..retry import RetryPolicy
from ..workflow import EditHooks, run_edit, write_json_atomic
from .budget import Budget, BudgetHeld
from .limiter import Limiter
from .manifest import (
    BatchJob,
    Manifest,
    ManifestError,
    from_records,
    in_shard,
    load,
    parse_shard,
)
from .report import JobReport, Report, report_path

if TYPE_CHECKING:
    from ..callbacks import TaskInbox

__all__ = ["BatchEvent", "plan", "run"]

log = logging.getLogger("kling_elements.batch")

BatchEvent = Callable[[str | None, str, dict[str, Any]], None]
_TRANSIENT = (ConnectionFailed, ServerError, RateLimitError)
_FATAL = (AuthError, AccountError, PermissionDeniedError)


_write_json = write_json_atomic


def _read_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


class _JobSlot(EditHooks):
    """One job's part in the batch's concurrency and budget, as ``run_edit`` hooks: a batch
    slot is taken just before the task is created (after the budget allowed it) and given
    back when the wait for that task ends, or when the attempt ends, whichever is first."""

    def __init__(self, runner: _Runner) -> None:
        self._runner = runner
        self._held = False
        self._created_at: float | None = None

    def resumed(self, task: Task) -> None:
        if not task.done and not self._held:  # resumed while running: it occupies a slot
            self._runner.limiter.acquire(force=True)
            self._held = True

    def before_create(self, body: dict[str, Any]) -> None:
        self._runner.reserve_task(body)  # BudgetHeld: nothing is sent
        if not self._held:
            self._runner.emit_current("waiting_slot", {})
            self._runner.limiter.acquire()
            self._held = True

    def created(self, task: Task) -> None:
        self._created_at = time.monotonic()
        self._runner.accepted()

    def poll_interval(self) -> float | None:
        return self._runner.poll_interval()

    def waited(self, task: Task | None) -> None:
        if task is not None and self._created_at is not None:
            self._runner.observe(time.monotonic() - self._created_at)
        self.release()

    def retried(self, error: Exception, wait: float) -> None:
        self._runner.on_retry(error, wait)

    def release(self) -> None:
        if self._held:
            self._held = False
            self._runner.limiter.release()


class _Runner:
    def __init__(self, client: Client, host: Host | None, out_dir: Path, limiter: Limiter,
                 on_event: BatchEvent | None, wait_timeout: float, poll_interval: float | None,
                 attempts: int, budget: Budget | None = None,
                 callback_url: str | None = None, inbox: TaskInbox | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        # A job's own retries; when to give up is _attempt_until_done's (attempts, time).
        self.job_retry = RetryPolicy(max_retries=1 << 30, sleep=sleep,
                                     on_retry=self._job_retry_event)
        self.budget = budget or Budget(None)
        self.host = host
        self.out_dir = out_dir
        self.limiter = limiter
        self.on_event = on_event
        self.wait_timeout = wait_timeout
        self.fixed_poll = poll_interval
        self.attempts = attempts
        self.callback_url = callback_url
        self.inbox = inbox
        self.stop = threading.Event()
        self.fatal: BaseException | None = None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._durations: list[float] = []

    # events and feedback -----------------------------------------------------------------
    def emit(self, name: str | None, kind: str, info: dict[str, Any]) -> None:
        if self.on_event is not None:
            try:
                self.on_event(name, kind, info)
            except Exception:
                log.exception("batch event callback failed")

    def emit_current(self, kind: str, info: dict[str, Any]) -> None:
        record = getattr(self._local, "record", None)
        self.emit(record.name if record else None, kind, info)

    def _job_retry_event(self, error: Exception, wait: float) -> None:
        record = getattr(self._local, "record", None)
        self.emit(record.name if record else None, "retry",
                  {"error": str(error), "wait_s": wait, "job": True})

    def on_retry(self, error: Exception, wait: float) -> None:
        """A retry of a job's own request (its ``run_edit`` hooks tell it, in its thread)."""
        record = getattr(self._local, "record", None)
        if record is not None:
            record.retries += 1
        self.emit(record.name if record else None, "retry",
                  {"code": getattr(error, "code", None), "error": str(error), "wait_s": wait})
        if getattr(error, "code", None) == 1303:
            limit = self.limiter.pressure()
            if limit is not None:
                self.emit(None, "limit", {"limit": limit, "reason": "1303"})

    # cost ----------------------------------------------------------------------------------
    def job_event(self, name: str, kind: str, info: dict[str, Any]) -> None:
        """A job's workflow event: costs are counted against the budget, then passed on."""
        if kind == "cost":
            step, cost, total = info["step"], info["cost"], info["total"]
            prices = self.budget.prices
            if step == "task":
                prices.observe(("task", *task_kind(info.get("mode"), info.get("duration"))),
                               cost.units)
            elif step in ("init-selection", "add-selection"):
                prices.observe((step,), cost.units)
            settled = step == "task" and (cost.units is not None or bool(info.get("done")))
            self.budget.report(name, total.units or Decimal(0), settled=settled)
            self.emit(None, "spent", {"units": self.budget.spent(),
                                      "budget": self.budget.limit})
        self.emit(name, kind, info)

    def reserve_task(self, body: dict[str, Any]) -> None:
        """Before a create: expect the task's estimate from this job, or hold the job."""
        record = getattr(self._local, "record", None)
        if record is None:
            return
        kind = ("task", *task_kind(body.get("mode"), body.get("duration")))
        self.budget.reserve(record.name, self.budget.prices.estimate(kind))

    def reserve_start(self, job: BatchJob) -> None:
        """Before a job sends anything: expect its whole estimate, or hold it. A job whose
        task may already exist (an earlier run saved its external id) is never held: that
        task may be paid for already and its result must not be left behind."""
        state = _read_state(self.state_path(job))
        if state.get("external_task_id"):
            return
        prices, spec = self.budget.prices, job.spec
        duration = spec.duration or job.expected_duration
        needed = prices.estimate(("task", *task_kind(spec.mode, duration)))
        if not state.get("selection"):
            needed += prices.estimate(("init-selection",))
            needed += prices.estimate(("add-selection",)) * len(spec.selections)
        self.budget.reserve(job.name, needed)

    def load_costs(self, jobs: list[BatchJob]) -> None:
        """What earlier runs of these jobs spent (their state files), and the prices seen."""
        for job in jobs:
            state = _read_state(self.state_path(job))
            ledger = _job_ledger(state)
            if ledger is None:
                continue
            kind = state.get("task_kind") or {}
            for step in ledger.steps():
                units = Cost.from_dict(step.get("cost")).units
                if step.get("step") == "task":
                    self.budget.prices.observe(
                        ("task", *task_kind(kind.get("mode"), kind.get("duration"))), units)
                elif step.get("step") in ("init-selection", "add-selection"):
                    self.budget.prices.observe((step["step"],), units)
            self.budget.report(job.name, ledger.total().units or Decimal(0), settled=True)

    def accepted(self) -> None:
        limit = self.limiter.succeeded()
        if limit is not None:
            self.emit(None, "limit", {"limit": limit, "reason": "creates accepted"})

    def observe(self, seconds: float) -> None:
        with self._lock:
            self._durations.append(seconds)
            del self._durations[:-50]

    def poll_interval(self) -> float | None:
        """A tenth of the typical task duration seen in this run (0.1-10 s); ``None`` (the
        client's schedule) until a task has ended."""
        if self.fixed_poll is not None:
            return self.fixed_poll
        with self._lock:
            if not self._durations:
                return None
            typical = statistics.median(self._durations)
        return min(max(typical / 10.0, 0.1), 10.0)

    # jobs ---------------------------------------------------------------------------------
    def state_path(self, job: BatchJob) -> Path:
        return self.out_dir / ".state" / "jobs" / f"{job.name}.json"

    def _finished(self, job: BatchJob, record: JobReport) -> bool:
        """Done in an earlier run: state says so and the output is there; nothing is sent."""
        edit = job.edit_job(self.out_dir)
        state = _read_state(self.state_path(job))
        if match_state(state.get("job"), edit) == "other" or not state.get(
                "done") or not Path(edit.output).is_file():
            return False
        if job.match_source and not job.matched_path(self.out_dir).is_file():
            return False
        record.status, record.output = "succeed", edit.output
        record.task_id, record.external_task_id = state.get("task_id"), state.get(
            "external_task_id")
        record.cost = _job_cost(state)
        return True

    def run_job(self, job: BatchJob, record: JobReport) -> None:
        if self._finished(job, record):
            self.emit(job.name, "skipped", asdict(record))
            return
        try:
            self.reserve_start(job)
        except BudgetHeld as exc:
            state = _read_state(self.state_path(job))
            record.status, record.error, record.cost = "held", str(exc), _job_cost(state)
            self.emit(job.name, "held", asdict(record))
            return
        start = time.monotonic()
        self._local.record = record
        try:
            self.emit(job.name, "start", {})
            self._attempt_until_done(job, record)
        finally:
            self._local.record = None
            record.seconds = round(time.monotonic() - start, 3)
            state = _read_state(self.state_path(job))
            if record.status != "succeed":
                record.task_id = state.get("task_id")
                record.external_task_id = state.get("external_task_id")
            record.cost = _job_cost(state)
            ledger = _job_ledger(state)
            task_id = state.get("task_id")
            if not task_id or (ledger is not None and ledger.task_cost(task_id) is not None):
                self.budget.settle(job.name)  # else its running task may still charge
            self.emit(job.name, record.status, asdict(record))

    def _attempt_until_done(self, job: BatchJob, record: JobReport) -> None:
        """Run the edit, resuming it after transient failures: connection and server errors
        up to ``attempts`` tries; 1303/1302 (they clear by waiting) for up to
        ``wait_timeout`` seconds."""
        edit = job.edit_job(self.out_dir)
        if job.conform is not None and not self._conformed(job, record):
            return
        tries, failures, throttled_since = 0, 0, None
        while True:
            slot = _JobSlot(self)
            try:
                result = run_edit(
                    self.client, edit, host=self.host, state_path=self.state_path(job),
                    wait_timeout=self.wait_timeout,
                    on_event=lambda kind, info: self.job_event(job.name, kind, info),
                    callback_url=self.callback_url, inbox=self.inbox, hooks=slot,
                )
            except _TRANSIENT as exc:
                tries += 1
                now = time.monotonic()
                if isinstance(exc, RateLimitError):
                    throttled_since = throttled_since or now
                    give_up = now - throttled_since > self.wait_timeout
                else:
                    failures += 1
                    give_up = failures >= self.attempts
                if give_up or self.stop.is_set():
                    record.status, record.error = "failed", str(exc)
                    return
                record.retries += 1
                self.job_retry.pause(tries + 1, exc)
            except BudgetHeld as exc:
                record.status, record.error = "held", str(exc)
                return
            except _FATAL as exc:
                record.status, record.error = "failed", str(exc)
                self.fatal = exc
                self.stop.set()
                return
            except Exception as exc:
                if not isinstance(exc, (KlingError, ValueError, OSError)):
                    log.exception("batch job %s failed unexpectedly", job.name)
                record.status, record.error = "failed", str(exc) or exc.__class__.__name__
                return
            else:
                record.task_id = result.task.task_id
                record.external_task_id = result.task.external_task_id
                if job.match_source and not self._matched(job, result.output, record):
                    return
                record.status, record.output = "succeed", str(result.output)
                return
            finally:
                slot.release()

    def _matched(self, job: BatchJob, result: Path, record: JobReport) -> bool:
        """Write ``<name>.source.mp4`` (see ``conform.match``); False when it failed."""
        assert job.conform is not None
        target = job.matched_path(self.out_dir)
        emit = lambda kind, info: self.emit(job.name, kind, info)  # noqa: E731
        try:
            match_source(result, job.conform.plan, target, cancel=self.stop)
        except (ValueError, OSError) as exc:
            record.status, record.error = "failed", f"the result is in {result}, but " \
                f"bringing it back to the plate's terms failed: {exc}"
            return False
        emit("matched", {"path": str(target)})
        return True

    def _conformed(self, job: BatchJob, record: JobReport) -> bool:
        """Render the job's conformed clip unless cached (see ``conform.cache``)."""
        assert job.conform is not None
        emit = lambda kind, info: self.emit(job.name, kind, info)  # noqa: E731
        try:
            path, rendered = job.conform.ensure(
                self.out_dir, on_progress=progress_events(emit), cancel=self.stop)
        except (ValueError, OSError) as exc:
            record.status, record.error = "failed", str(exc)
            return False
        emit("conformed", {"path": str(path), "rendered": rendered})
        return True


def _job_ledger(state: dict[str, Any]) -> CostLedger | None:
    record = state.get("cost")
    return CostLedger(record) if isinstance(record, dict) else None


def _job_cost(state: dict[str, Any]) -> dict[str, Any] | None:
    """A job's reported cost over every run (``None``: nothing was ever charged)."""
    ledger = _job_ledger(state)
    return ledger.total().to_dict() if ledger is not None and ledger.steps() else None


def _budget(value: Decimal | float | str | None) -> Decimal | None:
    if value is None:
        return None
    amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"budget {value!r} must be a number of units >= 0, e.g. 50")
    return amount


def plan(manifest: Manifest, shard: tuple[int, int] | None = None
         ) -> tuple[list[BatchJob], list[JobReport]]:
    """The valid jobs of ``shard`` and the report lines of its invalid ones."""
    jobs = [job for job in manifest.jobs if in_shard(job.name, shard)]
    invalid = []
    for line, name in manifest.invalid_lines:
        if in_shard(name, shard):
            problems = [p.message for p in manifest.problems if p.line == line]
            invalid.append(JobReport(name=name, line=line, status="invalid",
                                     error="; ".join(problems)))
    return jobs, invalid


def _manifest(jobs: str | os.PathLike | Manifest | Iterable[Mapping[str, Any]],
              local_ok: bool) -> Manifest:
    if isinstance(jobs, Manifest):
        return jobs
    if isinstance(jobs, (str, os.PathLike)):
        return load(jobs, local_ok=local_ok)
    return from_records(enumerate(jobs, start=1), Path.cwd(), local_ok=local_ok)


def run(
    jobs: str | os.PathLike | Manifest | Iterable[Mapping[str, Any]],
    out_dir: str | os.PathLike,
    *,
    client: Client | None = None,
    host: Host | None = None,
    concurrency: int = 3,
    shard: tuple[int, int] | str | None = None,
    skip_invalid: bool = False,
    on_event: BatchEvent | None = None,
    wait_timeout: float = 1800.0,
    poll_interval: float | None = None,
    attempts: int = 3,
    upload_ttl_s: float = 6 * 3600.0,
    budget: Decimal | float | str | None = None,
    callback_url: str | None = None,
    inbox: TaskInbox | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Report:
    """Run (or resume) every job of the manifest in ``shard``; write the results and report.

    ``jobs`` is a manifest path (JSON Lines, paths relative to its folder), a parsed
    :class:`Manifest`, or job dicts (paths relative to the working directory). Local clips
    need ``host``. The whole manifest is validated first: with any invalid line nothing is
    sent and :class:`ManifestError` lists every problem (unless ``skip_invalid``, which runs
    the valid jobs and reports the others as ``invalid``). Jobs whose task fails, or whose
    transient errors outlast ``attempts`` tries, are ``failed``; the run goes on. An auth or
    account error stops starting jobs (the rest stay ``pending``). ``on_event(name, kind,
    info)`` reports progress (``name`` ``None`` for the batch itself). ``poll_interval``
    fixes how often a task is polled (default: adaptive, see ``_Runner.poll_interval``);
    published URLs are reused for ``upload_ttl_s`` (a presigned URL only while it has more
    than ten minutes left). ``callback_url`` goes into every create body and ``inbox``
    (the receiver behind it, ``kling_elements.callbacks``) lets each wait end on its task's
    final delivery, polling only as a fallback. The report is written after every job to
    ``report.json`` (``report.I-of-N.json`` for a shard); it is returned.

    ``budget`` (units; default: the manifest's, else none) holds back jobs that would pass
    it (status ``held``, see ``batch.budget``); it covers this shard's jobs over every run.
    ``sleep`` waits between a job's own retries (``retry.RetryPolicy``; a test's clock).
    """
    out = Path(out_dir).resolve()
    if shard is not None:
        shard = parse_shard(shard if isinstance(shard, str) else f"{shard[0]}/{shard[1]}")
    manifest = _manifest(jobs, local_ok=host is not None)
    limit = _budget(budget if budget is not None else manifest.budget)
    selected, records_invalid = plan(manifest, shard)
    path = report_path(out, shard)
    records = {job.name: JobReport(name=job.name, line=job.line, meta=job.meta)
               for job in selected}
    report = Report(sorted([*records.values(), *records_invalid], key=lambda r: r.line),
                    path, shard, limit)
    if manifest.problems and not skip_invalid:
        _write_json(path, report.to_dict())
        raise ManifestError(manifest.problems)
    own_client = client is None
    client = client or Client.from_env()
    if host is not None and not isinstance(host, CachingHost):
        identity = getattr(host, "identity", None) or f"{type(host).__name__} {client.base_url}"
        host = CachingHost(host, out / ".state" / "uploads.json", ttl_s=upload_ttl_s,
                           provider=identity)
    limiter = Limiter(concurrency)
    runner = _Runner(client, host, out, limiter, on_event, wait_timeout, poll_interval,
                     attempts, Budget(limit, PriceBook()), callback_url, inbox, sleep)
    runner.load_costs(selected)
    todo: queue.Queue[BatchJob] = queue.Queue()
    for job in selected:
        todo.put(job)
    write_lock = threading.Lock()

    def write_report() -> None:
        with write_lock:
            _write_json(path, report.to_dict())

    def worker() -> None:
        while not runner.stop.is_set():
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            runner.run_job(job, records[job.name])
            write_report()

    runner.emit(None, "begin", {"jobs": len(selected), "invalid": len(records_invalid),
                                "concurrency": concurrency, "report": str(path),
                                "budget": limit, "spent": runner.budget.spent()})
    # Twice as many workers as slots: the next jobs' uploads and clicks run while tasks
    # render. Daemon threads, so an interrupted run exits at once; the state is on disk.
    threads = [threading.Thread(target=worker, name=f"batch-{i}", daemon=True)
               for i in range(min(len(selected), 2 * concurrency))]
    try:
        write_report()
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    finally:
        runner.stop.set()
        write_report()
        if own_client:
            client.close()
    runner.emit(None, "end", report.counts())
    return report
