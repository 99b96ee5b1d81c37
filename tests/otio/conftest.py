"""Fixtures of the OTIO tests: one sandbox and two 25 fps plates (a rate Kling does not
take, so every shot is really conformed), and a builder of marked timelines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import kling_elements as ke
from kling_elements.sandbox import RunningSandbox, running
from kling_elements.sandbox.sample import SampleClip, make_clip

otio = pytest.importorskip("opentimelineio")


@pytest.fixture(scope="package")
def sandbox() -> Iterator[RunningSandbox]:
    with running(task_seconds=0.3) as sb:
        yield sb


@pytest.fixture
def client(sandbox: RunningSandbox) -> Iterator[ke.Client]:
    with ke.Client(sandbox.access_key, sandbox.secret_key, base_url=sandbox.base_url) as c:
        yield c


@pytest.fixture(scope="package")
def plates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SampleClip]:
    """Two 720x720 plates, 25 fps, 4 s (100 frames), by file name."""
    folder = tmp_path_factory.mktemp("otio-plates")
    return {f"plate{seed}.mp4": make_clip(folder / f"plate{seed}.mp4", width=720, height=720,
                                          fps=25, seconds=4.0, seed=seed)
            for seed in (0, 1)}


@pytest.fixture
def project(tmp_path: Path, plates: dict[str, SampleClip]) -> Path:
    """A project folder with ``media/`` (copies of the plates) and ``refs/``."""
    (tmp_path / "media").mkdir()
    for name, clip in plates.items():
        (tmp_path / "media" / name).write_bytes(clip.path.read_bytes())
    return tmp_path
