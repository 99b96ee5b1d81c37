"""Progress of a batch for people: a live table on a terminal, plain log lines elsewhere.

``BatchDisplay`` is an ``on_event`` callback for ``batch.run``. On a terminal it redraws,
a few times a second, one line per running job (its stage, the percentage of an upload or
download) and a total line, with finished jobs and retries scrolling above it. Anywhere
else (a farm's log, a pipe) it writes one plain line per step that matters (task created,
resumed, finished, retried, limit changed, held back by the budget), never a progress bar.
The total line says what Kling reported deducting so far (and the budget, if any). It only
writes to its stream; a failing write never stops the batch.
"""

from __future__ import annotations

import sys
import threading
import time
from decimal import Decimal
from typing import Any, TextIO

__all__ = ["BatchDisplay"]

_STAGES = {
    "start": "starting", "publish": "uploading", "session": "selecting",
    "selection": "selecting", "waiting_slot": "waiting for a slot", "created": "submitted",
    "resumed": "resumed", "download_progress": "downloading",
}
_LOGGED = ("created", "resumed", "succeed", "failed", "skipped", "retry", "limit", "held",
           "conformed")


def _units(amount: Decimal | None) -> str:
    return "?" if amount is None else format(amount.normalize(), "f")


class BatchDisplay:
    """Draws batch events on ``stream`` (stderr by default); live when it is a terminal."""

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None,
                 refresh_s: float = 0.25) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._refresh_s = refresh_s
        self._lock = threading.Lock()
        self._running: dict[str, str] = {}
        self._counts = {"succeed": 0, "failed": 0, "skipped": 0, "held": 0}
        self._spent: Decimal | None = None
        self._budget: Decimal | None = None
        self._total = 0
        self._limit = 0
        self._drawn = 0
        self._log: list[str] = []
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> BatchDisplay:
        if self.live:
            self._thread = threading.Thread(target=self._loop, name="batch-display",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
            self._draw()

    def __call__(self, name: str | None, kind: str, info: dict[str, Any]) -> None:
        with self._lock:
            self._update(name, kind, info)
            if self.live and kind in _LOGGED and kind not in ("created", "resumed"):
                self._log.append(self._log_line(name, kind, info))
        if not self.live and kind in _LOGGED:
            self._write(self._log_line(name, kind, info) + "\n")

    def _update(self, name: str | None, kind: str, info: dict[str, Any]) -> None:
        if kind == "begin":
            self._total, self._limit = info["jobs"], info["concurrency"]
            self._budget, self._spent = info.get("budget"), info.get("spent")
        elif kind == "spent":
            self._spent, self._budget = info["units"], info["budget"]
        elif kind == "limit":
            self._limit = info["limit"]
        elif name is None:
            return
        elif kind in ("succeed", "failed", "skipped", "pending", "held"):
            self._running.pop(name, None)
            if kind in self._counts:
                self._counts[kind] += 1
        elif kind in ("upload_progress", "download_progress", "conform_progress"):
            total = info.get("total")
            verb = {"upload_progress": "uploading", "conform_progress": "conforming"}.get(
                kind, "downloading")
            self._running[name] = f"{verb} {100 * info['done'] / total:3.0f}%" if total else verb
        elif kind == "status":
            self._running[name] = str(info.get("status"))
        elif kind in _STAGES:
            self._running[name] = _STAGES[kind]

    def _log_line(self, name: str | None, kind: str, info: dict[str, Any]) -> str:
        if kind == "limit":
            return f"batch: concurrency limit now {info['limit']} ({info['reason']})"
        who = name or "batch"
        if kind == "created":
            return f"{who}: task {info['task_id']} created"
        if kind == "resumed":
            return f"{who}: resumed task {info['task_id']} ({info['status']})"
        if kind == "retry":
            return f"{who}: retry in {info['wait_s']:.1f} s after: {info['error']}"
        if kind == "conformed":
            how = "conformed" if info["rendered"] else "reusing conformed clip"
            return f"{who}: {how} {info['path']}"
        if kind == "skipped":
            return f"{who}: already done ({info['output']})"
        if kind == "succeed":
            return f"{who}: succeeded in {info['seconds']:.1f} s -> {info['output']}"
        if kind == "held":
            return f"{who}: {info.get('error')}"
        return f"{who}: {kind}: {info.get('error')}"

    def _total_line(self) -> str:
        done = sum(self._counts.values())
        held = f", {self._counts['held']} held" if self._counts["held"] else ""
        spent = ""
        if self._spent is not None:
            spent = f", spent {_units(self._spent)} units"
            if self._budget is not None:
                spent += f" of {_units(self._budget)}"
        return (f"{done}/{self._total} done ({self._counts['succeed']} ok, "
                f"{self._counts['failed']} failed, {self._counts['skipped']} already done"
                f"{held}), {len(self._running)} active, limit {self._limit}{spent}, "
                f"{time.monotonic() - self._started:.0f} s")

    def _draw(self) -> None:
        with self._lock:
            width = max((len(n) for n in self._running), default=0)
            lines = [f"  {n:<{width}}  {stage}" for n, stage in sorted(self._running.items())]
            lines.append(self._total_line())
            erase = f"\033[{self._drawn}F" if self._drawn else ""
            self._drawn = len(lines)
            lines[:0], self._log = self._log, []
        self._write(erase + "\033[J" + "\n".join(lines) + "\n")

    def _loop(self) -> None:
        while not self._stop.wait(self._refresh_s):
            self._draw()

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass
