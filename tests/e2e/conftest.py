"""Fixtures of the end-to-end tests: one sandbox on loopback and one sample clip for all.

Both are package-scoped, shared by the client and the CLI modules (making the clip is slow);
tests isolate themselves with their own sessions, external task ids and output paths, move
the shared clock only by seconds, and leave no fault rule behind. Tests that move the clock
by minutes or days use a sandbox of their own.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from kling_elements.sandbox import RunningSandbox, running
from kling_elements.sandbox.sample import SampleClip, make_clip

from ..sandbox.sandbox_support import client as admin_client
from ..sandbox.sandbox_support import ok


@pytest.fixture(scope="package")
def sandbox() -> Iterator[RunningSandbox]:
    with running(task_seconds=0.5, max_concurrent_tasks=50) as sb:
        yield sb


@pytest.fixture(scope="package")
def admin(sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    """Plain HTTP with the API key, for the ``/sandbox/*`` tools (faults, clock, stats)."""
    with admin_client(sandbox) as api:
        yield api


@pytest.fixture(scope="package")
def clip(tmp_path_factory: pytest.TempPathFactory) -> SampleClip:
    """The shortest valid clip: 1280x720, 30 fps, 2 s (60 frames)."""
    return make_clip(tmp_path_factory.mktemp("e2e-clip") / "clip.mp4",
                     width=1280, height=720, fps=30, seconds=2.0)


@pytest.fixture(autouse=True)
def _no_leftover_faults(admin: httpx.Client):
    yield
    ok(admin.delete("/sandbox/faults"))
