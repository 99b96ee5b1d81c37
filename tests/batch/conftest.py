"""Fixtures of the batch tests: one sandbox (tasks of 0.3 s, 3 at once per key) and two
short plates shared by every test (making clips is slow); each test writes its own
manifest and output folder, and leaves no fault rule behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import kling_elements as ke
from kling_elements.sandbox import RunningSandbox, running
from kling_elements.sandbox.sample import SampleClip, make_clip

from ..sandbox.sandbox_support import client as admin_client
from ..sandbox.sandbox_support import ok


@pytest.fixture(scope="package")
def sandbox() -> Iterator[RunningSandbox]:
    with running(task_seconds=0.3) as sb:
        yield sb


@pytest.fixture(scope="package")
def admin(sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    """Plain HTTP with the API key, for the ``/sandbox/*`` tools (faults, stats)."""
    with admin_client(sandbox) as api:
        yield api


@pytest.fixture(scope="package")
def plates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SampleClip]:
    """Two of the smallest valid clips (720x720, 24 fps, 2 s = 48 frames), by file name."""
    folder = tmp_path_factory.mktemp("plates")
    return {f"plate{seed}.mp4": make_clip(folder / f"plate{seed}.mp4", width=720, height=720,
                                          fps=24, seconds=2.0, seed=seed)
            for seed in (0, 1)}


@pytest.fixture
def client(sandbox: RunningSandbox) -> Iterator[ke.Client]:
    """A client with the JWT keys (the account the CLI subprocesses use too)."""
    with ke.Client(sandbox.access_key, sandbox.secret_key, base_url=sandbox.base_url) as c:
        yield c


@pytest.fixture(autouse=True)
def _no_leftover_faults(admin: httpx.Client) -> Iterator[None]:
    yield
    ok(admin.delete("/sandbox/faults"))


@pytest.fixture
def shots(tmp_path: Path, plates: dict[str, SampleClip]) -> Path:
    """A folder holding links to the plates, where a test writes its manifest."""
    folder = tmp_path / "shots"
    (folder / "plates").mkdir(parents=True)
    for name, clip in plates.items():
        (folder / "plates" / name).symlink_to(clip.path)
    return folder
