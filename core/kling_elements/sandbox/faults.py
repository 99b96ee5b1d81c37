"""Fault rules: make the next N requests to a route fail in a chosen, reproducible way.

A rule is ``{"route": R, "times": N, <one effect>}``; effects are

* ``"error": {"http": 429, "code": 1303, "message": "..."}`` - answer that envelope, do nothing;
* ``"delay_s": 5`` - hold the request that long (without blocking the server), then proceed
  normally: an API request is held once its body is read, so it is carried out even when
  the client stopped waiting meanwhile (a slow server; the answer then goes nowhere), a
  file request before its answer starts;
* ``"drop": "before_commit" | "after_commit"`` - close the connection without an answer,
  before the request had any effect, or after it took effect (e.g. the task exists);
* ``"truncate": 0.5`` - ``files`` only: declare the full length, send that fraction, close;
* ``"reject": {"status": 1, "message": "..."}`` - selection routes only: answer ``code`` 0
  with a non-zero ``data.status`` (Kling's rejection of the video or frame), change nothing.

The ``callback`` route is the sandbox's own outgoing task callbacks (one per format and
status change), faulted as real webhooks misbehave. A rule may name the ``"status"`` it
applies to (``submitted``, ``processing``, ``succeed``, ``failed``); effects are

* ``"drop": "before_commit"`` - the delivery is lost (never sent, never retried);
  ``"drop": "after_commit"`` - it is sent, but its acknowledgement "is lost": the sender
  retries, so the receiver gets it again;
* ``"delay_s": 30`` - it leaves that long later (sandbox clock), so later ones overtake it;
* ``"repeat": 2`` - it is sent that many extra times (same ``webhook-id``);
* ``"reorder": true`` - it is held until the task's next status change has been delivered.

Rules are consumed in the order they were added: each matching request takes one use of the
first rule for its route; a rule is removed once used ``times`` times. Thread-safe.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace

from ..errors import CODES
from .config import ApiError

__all__ = [
    "CALLBACK_ROUTE", "CALLBACK_STATUSES", "DROP_WHEN", "ROUTES", "SELECTION_ROUTES",
    "FaultBook", "FaultRule", "parse_rules",
]

ROUTES = (
    "init-selection", "add-selection", "delete-selection", "clear-selection",
    "preview-selection", "create", "get", "list", "account", "uploads", "files",
)  # the routes of requests the sandbox answers
CALLBACK_ROUTE = "callback"  # the deliveries it sends
DROP_WHEN = ("before_commit", "after_commit")
_EFFECTS = ("error", "delay_s", "drop", "truncate", "reject", "repeat", "reorder")
_CALLBACK_ONLY = ("repeat", "reorder")
CALLBACK_STATUSES = ("submitted", "processing", "succeed", "failed")
SELECTION_ROUTES = ROUTES[:5]
MAX_DELAY_S = 600.0
MAX_REPEAT = 10


@dataclass
class FaultRule:
    """One rule; exactly one effect (``error``, ``delay_s``, ``drop``, ``truncate``,
    ``reject``, ``repeat``, ``reorder``) is set; ``status`` narrows a ``callback`` rule."""

    route: str
    times: int
    error: dict | None = None  # {"http": int, "code": int, "message": str}
    delay_s: float | None = None
    drop: str | None = None
    truncate: float | None = None
    repeat: int | None = None
    reorder: bool | None = None
    status: str | None = None
    reject: dict | None = None  # {"status": int, "message": str}

    def to_json(self) -> dict:
        out: dict = {"route": self.route, "times": self.times}
        for name in (*_EFFECTS, "status"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


def _bad(index: int, text: str) -> ApiError:
    return ApiError(1201, f"rules[{index}]: {text}")


def _number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _error_effect(index: int, value: object) -> dict:
    if not isinstance(value, dict):
        raise _bad(index, 'error must be an object like {"http": 429, "code": 1303}')
    code = value.get("code")
    if isinstance(code, bool) or not isinstance(code, int):
        raise _bad(index, "error.code must be an integer business code")
    http = value.get("http", CODES[code].http_status if code in CODES else None)
    if isinstance(http, bool) or not isinstance(http, int) or not 100 <= http <= 599:
        raise _bad(index, "error.http must be an HTTP status 100-599 (required for unknown codes)")
    message = value.get("message", CODES[code].meaning if code in CODES else "injected fault")
    if not isinstance(message, str):
        raise _bad(index, "error.message must be a string")
    return {"http": http, "code": code, "message": message}


def _reject_effect(index: int, route: str, value: object) -> dict:
    if route not in SELECTION_ROUTES:
        raise _bad(index, f"reject only applies to {', '.join(SELECTION_ROUTES)}")
    if not isinstance(value, dict):
        raise _bad(index, 'reject must be an object like {"status": 1, "message": "..."}')
    status = value.get("status", 1)
    if isinstance(status, bool) or not isinstance(status, int) or status == 0:
        raise _bad(index, "reject.status must be a non-zero integer (0 means accepted)")
    message = value.get("message", "rejected")
    if not isinstance(message, str):
        raise _bad(index, "reject.message must be a string")
    return {"status": status, "message": message}


def _parse_rule(index: int, raw: object) -> FaultRule:
    if not isinstance(raw, dict):
        raise _bad(index, "each rule must be an object")
    route = raw.get("route")
    if route not in ROUTES and route != CALLBACK_ROUTE:
        raise _bad(index, f"route {route!r} is not one of {', '.join(ROUTES)} or "
                          f"{CALLBACK_ROUTE}")
    times = raw.get("times", 1)
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise _bad(index, f"times {times!r} must be an integer >= 1")
    unknown = set(raw) - {"route", "times", "status", *_EFFECTS}
    if unknown:
        raise _bad(index, f"unknown field(s) {', '.join(sorted(unknown))}")
    effects = [name for name in _EFFECTS if name in raw]
    if len(effects) != 1:
        raise _bad(index, f"give exactly one effect of {', '.join(_EFFECTS)}")
    rule = FaultRule(route=route, times=times)
    effect, value = effects[0], raw[effects[0]]
    if route == CALLBACK_ROUTE:
        _callback_rule(index, rule, raw, effect)
    elif effect in _CALLBACK_ONLY or "status" in raw:
        raise _bad(index, f"{'status' if 'status' in raw else effect} only applies to the "
                          "callback route")
    if effect == "error":
        rule.error = _error_effect(index, value)
    elif effect == "delay_s":
        if not _number(value) or not 0 <= value <= MAX_DELAY_S:
            raise _bad(index, f"delay_s must be a number of seconds in 0-{MAX_DELAY_S:g}")
        rule.delay_s = float(value)
    elif effect == "reject":
        rule.reject = _reject_effect(index, route, value)
    elif effect == "drop":
        if value not in DROP_WHEN:
            raise _bad(index, f"drop must be one of {', '.join(DROP_WHEN)}")
        rule.drop = value
    elif effect == "truncate":
        if route != "files":
            raise _bad(index, "truncate only applies to the files route")
        if not _number(value) or not 0 <= value < 1:
            raise _bad(index, "truncate must be a fraction in [0, 1)")
        rule.truncate = float(value)
    return rule


def _callback_rule(index: int, rule: FaultRule, raw: dict, effect: str) -> None:
    """Fill and check what only a ``callback`` rule has (its status, repeat, reorder)."""
    status = raw.get("status")
    if status is not None and status not in CALLBACK_STATUSES:
        raise _bad(index, f"status {status!r} is not one of {', '.join(CALLBACK_STATUSES)}")
    rule.status = status
    value = raw[effect]
    if effect in ("error", "truncate"):
        raise _bad(index, f"{effect} does not apply to the callback route (use drop, delay_s, "
                          "repeat or reorder)")
    if effect == "repeat":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_REPEAT:
            raise _bad(index, f"repeat must be an integer 1-{MAX_REPEAT} (extra copies)")
        rule.repeat = value
    elif effect == "reorder":
        if value is not True:
            raise _bad(index, "reorder must be true")
        rule.reorder = True


def parse_rules(body: object) -> list[FaultRule]:
    """Rules from ``{"rules": [...]}``; 1201 naming the rule and field on any mistake."""
    if not isinstance(body, dict) or not isinstance(body.get("rules"), list):
        raise ApiError(1201, 'body must be {"rules": [{"route": ..., "times": N, <effect>}]}')
    return [_parse_rule(i, raw) for i, raw in enumerate(body["rules"])]


class FaultBook:
    """The pending rules, consumed in order by matching requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(self, rules: list[FaultRule]) -> None:
        with self._lock:
            self._rules.extend(rules)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def snapshot(self) -> list[dict]:
        with self._lock:
            return [rule.to_json() for rule in self._rules]

    def take(self, route: str, status: str | None = None) -> FaultRule | None:
        """Consume one use of the first rule for ``route`` (and, for a rule that names one,
        ``status``); the rule as it applies, or None."""
        with self._lock:
            for rule in self._rules:
                if rule.route == route and rule.status in (None, status):
                    rule.times -= 1
                    if rule.times <= 0:
                        self._rules.remove(rule)
                    return replace(rule, times=1)
        return None
