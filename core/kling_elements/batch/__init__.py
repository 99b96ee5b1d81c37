"""Batch edits: run a manifest of edits with bounded concurrency, resumably, shardably.

``run(jobs, out_dir, ...)`` drives many ``workflow.run_edit`` calls at once (``runner``).
Each job's progress is in ``DIR/.state/jobs/<name>.json``, so a run killed at any moment and
started again never creates a second task and continues its downloads. Unchanged clips are
published once (``hosting.CachingHost``, ``DIR/.state/uploads.json``), also across runs.

The parts, each with one job:

- ``manifest``: reads and checks the JSON Lines manifest (every problem at once), shards it.
- ``limiter``: the task slots; on 1303 the limit halves, accepted creates grow it (AIMD).
- ``budget``: holds a job back when what was reported plus its estimate would pass the
  budget (``held``; a run with a larger budget continues it).
- ``report``: ``report.json``, rewritten after every job, with each job's cost.
- ``runner``: the worker threads, the retries of a job, the hooks into ``run_edit``.
- ``display``: progress for people (a live table on a terminal, plain lines elsewhere).
"""

from __future__ import annotations

from .budget import Budget, BudgetHeld
from .limiter import Limiter
from .manifest import BatchJob, Manifest, ManifestError, from_records, in_shard, load, parse_shard
from .report import JobReport, Report, report_path
from .runner import BatchEvent, plan, run

__all__ = [
    "BatchEvent", "BatchJob", "Budget", "BudgetHeld", "JobReport", "Limiter", "Manifest",
    "ManifestError", "Report", "from_records", "in_shard", "load", "parse_shard", "plan",
    "report_path", "run",
]
