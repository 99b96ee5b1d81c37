"""The cost of one edit, step by step, kept in its state file.

``run_edit`` records each answer's deduction as a step (``init-selection``, one
``add-selection`` per frame, ``restore`` when the client had to replay the session, and the
``task``, updated as Kling reports it), so the CLI can show each step and the total, and a
resumed or retried run adds to what earlier runs spent instead of forgetting it. The
ledger is plain JSON inside the state dict: ``{"steps": [{"step": ..., "cost": {...},
...}]}``.
"""

from __future__ import annotations

from typing import Any

from .cost import Cost

__all__ = ["CostLedger"]


class CostLedger:
    """A view over ``record`` (a dict stored in the edit's state), which it fills in."""

    def __init__(self, record: dict[str, Any]) -> None:
        steps = record.get("steps")
        if not isinstance(steps, list):
            steps = record["steps"] = []
        self._steps: list[dict[str, Any]] = steps

    def add(self, step: str, cost: Cost, **info: Any) -> None:
        """Record one more deduction."""
        self._steps.append({"step": step, "cost": cost.to_dict(), **info})

    def set_task(self, task_id: str, cost: Cost, **info: Any) -> bool:
        """Record the task's deduction as last reported (one entry per task); whether it
        changed."""
        entry = {"step": "task", "task_id": task_id, "cost": cost.to_dict(), **info}
        for i, known in enumerate(self._steps):
            if known.get("step") == "task" and known.get("task_id") == task_id:
                if known == entry:
                    return False
                self._steps[i] = entry
                return True
        self._steps.append(entry)
        return True

    def task_cost(self, task_id: str) -> Cost | None:
        """The recorded deduction of that task (``None``: never recorded)."""
        for known in self._steps:
            if known.get("step") == "task" and known.get("task_id") == task_id:
                return Cost.from_dict(known.get("cost"))
        return None

    def steps(self) -> list[dict[str, Any]]:
        """The steps in order, JSON-ready (copies)."""
        return [dict(step) for step in self._steps]

    def total(self) -> Cost:
        return sum((Cost.from_dict(step.get("cost")) for step in self._steps), Cost())
