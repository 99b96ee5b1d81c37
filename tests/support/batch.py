"""Helpers of the batch tests: manifests, what a run left on disk and at the sandbox."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import kling_elements as ke
from kling_elements.sandbox.sample import SampleClip

from .media import frame_count

FRAMES = 48  # the plates: 24 fps, 2 s
REMOVE = "Remove the ball from <<<video_1>>>"


def job(name: str, plate: str, clip: SampleClip, **extra: object) -> dict:
    return {"name": name, "video": f"plates/{plate}",
            "select": [{"frame": 0, "points": [list(clip.center(0))]}],
            "edit_mode": "removal", "prompt": REMOVE, **extra}


def write_manifest(folder: Path, plates: dict[str, SampleClip], count: int,
                   name: str = "manifest.jsonl") -> tuple[Path, list[str]]:
    """``count`` removals alternating over the plates; the manifest path and the names."""
    items = sorted(plates.items())
    jobs = [job(f"sh{i:03d}", *items[i % len(items)]) for i in range(count)]
    path = folder / name
    path.write_text("".join(json.dumps(j) + "\n" for j in jobs))
    return path, [j["name"] for j in jobs]


def tasks_by_external_id(client: ke.Client) -> Counter[str]:
    return Counter(task.external_task_id for task in client.list_tasks(page_size=500))


def saved_external_ids(out: Path) -> dict[str, str]:
    """Each job's external_task_id, from its state file."""
    return {path.stem: json.loads(path.read_text())["external_task_id"]
            for path in sorted((out / ".state" / "jobs").glob("*.json"))}


def assert_complete(out: Path, names: list[str]) -> None:
    """Every job's output is there, whole, with no partial download left beside it."""
    for name in names:
        assert frame_count(out / f"{name}.mp4") == FRAMES, name
    assert not list(out.glob("*.part"))


def uploads(sandbox_dir: Path) -> int:
    """Files the sandbox received through ``/sandbox/uploads``."""
    folder = sandbox_dir / "uploads"
    return len(list(folder.iterdir())) if folder.exists() else 0
