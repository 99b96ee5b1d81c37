"""Fixtures of the batch tests: one sandbox (tasks of 0.3 s, 3 at once per key) and two
short plates shared by every test; each test writes its own manifest and output folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import kling_elements as ke
from kling_elements.sandbox import RunningSandbox
from kling_elements.sandbox.sample import SampleClip

from ..support.fixtures import sandbox_fixture

sandbox = sandbox_fixture(task_seconds=0.3)


@pytest.fixture(scope="package")
def plates(make_plate) -> dict[str, SampleClip]:
    """Two of the smallest valid clips (720x720, 24 fps, 2 s = 48 frames), by file name."""
    return {f"plate{seed}.mp4": make_plate(720, 720, 24, 2.0, seed) for seed in (0, 1)}


@pytest.fixture
def client(sandbox: RunningSandbox) -> Iterator[ke.Client]:
    """A client with the JWT keys (the account the CLI subprocesses use too)."""
    with ke.Client(sandbox.access_key, sandbox.secret_key, base_url=sandbox.base_url) as c:
        yield c


@pytest.fixture
def shots(tmp_path: Path, plates: dict[str, SampleClip]) -> Path:
    """A folder holding links to the plates, where a test writes its manifest."""
    folder = tmp_path / "shots"
    (folder / "plates").mkdir(parents=True)
    for name, clip in plates.items():
        (folder / "plates" / name).symlink_to(clip.path)
    return folder
