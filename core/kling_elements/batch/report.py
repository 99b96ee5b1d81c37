"""What a batch run reports: one line per job of the shard, the counts and the cost.

``report.json`` (``report.I-of-N.json`` for a shard) is rewritten after every job, so a
farm's dashboard or a person can read where a run stands at any time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..cost import Cost, json_number

__all__ = ["JobReport", "Report", "report_path"]


@dataclass
class JobReport:
    """One line of ``report.json``; ``status`` is succeed, failed, invalid, held (by the
    budget) or pending; ``cost`` is what Kling reported deducting for the job, every run
    counted (``Cost.to_dict``)."""

    name: str | None
    line: int
    status: str = "pending"
    task_id: str | None = None
    external_task_id: str | None = None
    output: str | None = None
    error: str | None = None
    seconds: float = 0.0
    retries: int = 0
    cost: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None


@dataclass
class Report:
    """The outcome of one run (one shard): every job of the shard, in manifest order."""

    jobs: list[JobReport]
    path: Path
    shard: tuple[int, int] | None
    budget: Decimal | None = None

    @property
    def ok(self) -> bool:
        return all(job.status == "succeed" for job in self.jobs)

    def counts(self) -> dict[str, int]:
        counts = {"succeed": 0, "failed": 0, "invalid": 0, "held": 0, "pending": 0}
        for job in self.jobs:
            counts[job.status] = counts.get(job.status, 0) + 1
        return counts

    def cost(self) -> Cost:
        """What Kling reported deducting for the jobs of this report, in all."""
        return sum((Cost.from_dict(job.cost) for job in self.jobs), Cost())

    def to_dict(self) -> dict[str, Any]:
        return {"shard": f"{self.shard[0]}/{self.shard[1]}" if self.shard else None,
                "counts": self.counts(), "cost": self.cost().to_dict(),
                "budget": json_number(self.budget),
                "jobs": [asdict(job) for job in self.jobs]}

    def summary(self) -> str:
        """A few lines for humans: the counts, then each job that did not succeed."""
        c = self.counts()
        retries = sum(job.retries for job in self.jobs)
        budget = f" of a budget of {json_number(self.budget)}" if self.budget is not None else ""
        lines = [f"{len(self.jobs)} job(s): {c['succeed']} succeeded, {c['failed']} failed, "
                 f"{c['invalid']} invalid, {c['held']} held, {c['pending']} pending; "
                 f"{retries} retried request(s); cost: {self.cost()}{budget}; "
                 f"report: {self.path}"]
        lines += [f"  {job.name or f'line {job.line}'}: {job.status}"
                  + (f": {job.error}" if job.error else "")
                  for job in self.jobs if job.status != "succeed"]
        return "\n".join(lines)


def report_path(out_dir: Path, shard: tuple[int, int] | None) -> Path:
    """``report.json``, or ``report.I-of-N.json`` so shards sharing a folder never clash."""
    return out_dir / ("report.json" if shard is None else f"report.{shard[0]}-of-{shard[1]}.json")
