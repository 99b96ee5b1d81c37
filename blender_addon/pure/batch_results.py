"""Import Batch Results, the worker side: a batch output folder -> one outcome per shot.

No ``bpy`` and no network: it reads ``report.json`` and the shard reports
(``report.I-of-N.json``), each job's state file (for the result's Kling video id, which
chains the next edit) and checks which result files are there. It runs on a worker thread;
the operator then places the outcomes on the main thread.

Farm machines mount the folder at other paths, so a result is looked for where the report
says and then by its file name in this folder. A job listed by several reports (shards run
again with another count) is taken from the report that has it succeeded, else the newest.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kling_elements.cost import Cost

__all__ = ["JobOutcome", "ResultsError", "read_results"]

_SHARD_REPORT = re.compile(r"report\.\d+-of-\d+\.json")


class ResultsError(ValueError):
    """The folder holds no readable batch report; the message says what was looked for."""


@dataclass(frozen=True)
class JobOutcome:
    """One job of the batch as the reports tell it, with the files found for it here.

    ``output`` is the result in the conformed clip's terms (Kling's file) and ``matched``
    the ``<name>.source.mp4`` in the plate's terms; each is ``""`` when not on disk.
    """

    name: str
    status: str
    meta: dict[str, Any]
    error: str = ""
    output: str = ""
    matched: str = ""
    task_id: str = ""
    external_task_id: str = ""
    video_id: str = ""
    cost: str = ""


def _reports(folder: Path) -> list[Path]:
    found = [p for p in folder.iterdir() if p.name == "report.json"
             or _SHARD_REPORT.fullmatch(p.name)]
    return sorted(found, key=lambda p: p.stat().st_mtime_ns)


def _local(folder: Path, reported: str | None, name: str, suffix: str) -> str:
    """The result file on this machine: as reported, else by its name in ``folder``."""
    candidates = [Path(reported)] if reported else []
    candidates.append(folder / f"{name}{suffix}")
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate.resolve())
    if reported:
        by_name = folder / Path(reported).name
        if by_name.is_file():
            return str(by_name.resolve())
    return ""


def _video_id(folder: Path, name: str) -> str:
    try:
        state = json.loads((folder / ".state" / "jobs" / f"{name}.json").read_text("utf-8"))
    except (OSError, ValueError):
        return ""
    value = state.get("video_id") if isinstance(state, dict) else None
    return value if isinstance(value, str) else ""


def _outcome(folder: Path, job: dict[str, Any]) -> JobOutcome | None:
    name, meta = job.get("name"), job.get("meta")
    if not isinstance(name, str) or not isinstance(meta, dict):
        return None  # not a line of an exported manifest: nothing says where it belongs
    status = str(job.get("status") or "pending")
    output = matched = ""
    if status == "succeed":
        output = _local(folder, job.get("output"), name, ".mp4")
        matched = _local(folder, None, name, ".source.mp4")
    cost = Cost.from_dict(job.get("cost")) if isinstance(job.get("cost"), dict) else None
    return JobOutcome(
        name=name, status=status, meta=meta, error=str(job.get("error") or ""),
        output=output, matched=matched, task_id=str(job.get("task_id") or ""),
        external_task_id=str(job.get("external_task_id") or ""),
        video_id=_video_id(folder, name) if status == "succeed" else "",
        cost=str(cost) if cost is not None and cost.known else "")


def read_results(folder: str | os.PathLike) -> list[JobOutcome]:
    """Every job of the folder's reports that came from an exported manifest (has ``meta``).

    Raises :class:`ResultsError` when the folder has no readable report.
    """
    root = Path(folder).resolve()
    if not root.is_dir():
        raise ResultsError(f"{str(root)!r} is not a folder: choose the batch's --out folder")
    reports = _reports(root)
    if not reports:
        raise ResultsError(f"no report.json (or report.I-of-N.json) in {str(root)!r}: choose "
                           "the folder given to kling-elements batch --out")
    jobs: dict[str, JobOutcome] = {}
    unreadable = []
    for report in reports:
        try:
            data = json.loads(report.read_text("utf-8"))
            entries = data["jobs"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            unreadable.append(f"{report.name}: {exc}")
            continue
        for entry in entries if isinstance(entries, list) else ():
            outcome = _outcome(root, entry) if isinstance(entry, dict) else None
            if outcome is None:
                continue
            known = jobs.get(outcome.name)
            if known is None or known.status != "succeed" or outcome.status == "succeed":
                jobs[outcome.name] = outcome
    if unreadable and not jobs:
        raise ResultsError("no report could be read: " + "; ".join(unreadable))
    return list(jobs.values())
