"""Kling's two callback bodies, read into the one :class:`~kling_elements.models.Task` model.

* **legacy** (the old-standard APIs, Multi-Elements among them): the task object of a GET,
  ``{task_id, task_status, task_status_msg, task_info: {external_task_id, parent_video},
  created_at, updated_at, final_unit_deduction, final_balance_deduction, task_result:
  {videos: [{id, url, watermark_url, duration}]}}``;
* **new**: ``{id, status, message, create_time, update_time, external_id, outputs: [...],
  billing: [...]}``, where ``succeeded`` is the old ``succeed``.

A new body is reshaped into the legacy one and read by ``Task.from_api``, so both formats
give equal tasks and every field the model learns is learnt for callbacks too. What the
docs leave open (the items of ``outputs`` and ``billing``, the unit of the times) and the
reading chosen are in docs/kling-api.md, "Callbacks".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import ResponseFormatError
from ..models import STATUS_RANK, Task

__all__ = ["FORMATS", "STATUS_RANK", "Callback", "PayloadError", "parse", "rank"]

FORMATS = ("legacy", "new")
_NEW_STATUS = {"succeeded": "succeed"}


class PayloadError(ValueError):
    """A body that is neither callback format; ``str`` names the field."""


def rank(status: str | None) -> int:
    """The status's place in a task's life (-1: nothing known; unknown words count as 1)."""
    if status is None:
        return -1
    return STATUS_RANK.get(status, 1)


@dataclass(frozen=True)
class Callback:
    """One callback body: the task it reports, its format, and the deductions it states."""

    task: Task
    format: str
    unit_deduction: str = ""
    balance_deduction: dict[str, Any] | None = None


def _video(item: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict) or item.get("type", "video") != "video":
        return None
    video = {k: item[k] for k in ("id", "url", "watermark_url", "duration", "session_id")
             if item.get(k) is not None}
    video.setdefault("id", item.get("video_id", ""))
    return video


def _billing(items: Any) -> dict[str, Any]:
    """The legacy deduction fields read from ``billing``'s first item that states one."""
    found: dict[str, Any] = {}
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        for name in ("final_unit_deduction", "final_balance_deduction"):
            if name in item and name not in found:
                found[name] = item[name]
    return found


def _legacy_shape(body: dict[str, Any]) -> dict[str, Any]:
    status = body.get("status")
    outputs = body.get("outputs")
    if outputs is not None and not isinstance(outputs, list):
        raise PayloadError(f"outputs is {type(outputs).__name__}, expected a list")
    return {
        "task_id": body.get("id"),
        "task_status": _NEW_STATUS.get(status, status) if isinstance(status, str) else status,
        "task_status_msg": body.get("message") or "",
        "task_info": {"external_task_id": body.get("external_id") or ""},
        "created_at": body.get("create_time") or 0,
        "updated_at": body.get("update_time") or 0,
        "task_result": {"videos": [v for v in map(_video, outputs or []) if v is not None]},
        **_billing(body.get("billing")),
    }


def parse(body: bytes | str | dict[str, Any]) -> Callback:
    """The callback in ``body`` (raw JSON or already parsed); :class:`PayloadError` else."""
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except (ValueError, RecursionError):
            raise PayloadError("the body is not JSON") from None
    if not isinstance(body, dict):
        raise PayloadError("the body is not a JSON object")
    if "task_id" in body:
        kind, data = "legacy", body
    elif "id" in body and "status" in body:
        kind, data = "new", _legacy_shape(body)
    else:
        raise PayloadError("the body has neither task_id (legacy callback) nor id and status "
                           "(new callback)")
    try:
        task = Task.from_api(data)
    except ResponseFormatError as exc:
        raise PayloadError(f"{kind} callback: {exc}") from None
    balance = data.get("final_balance_deduction")
    return Callback(
        task=task, format=kind,
        unit_deduction=str(data.get("final_unit_deduction") or ""),
        balance_deduction=balance if isinstance(balance, dict) else None,
    )
