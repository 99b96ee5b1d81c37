"""Fixtures of the end-to-end tests: one sandbox on loopback and one sample clip for all.

Tests isolate themselves with their own sessions, external task ids and output paths, move
the shared clock only by seconds, and leave no fault rule behind (the root conftest clears
them). Tests that move the clock by minutes or days use a sandbox of their own.
"""

from __future__ import annotations

import pytest

from kling_elements.sandbox.sample import SampleClip

from ..support.fixtures import sandbox_fixture

sandbox = sandbox_fixture(task_seconds=0.5, max_concurrent_tasks=50)


@pytest.fixture(scope="package")
def clip(make_plate) -> SampleClip:
    """The shortest valid clip: 1280x720, 30 fps, 2 s (60 frames)."""
    return make_plate(1280, 720, 30, 2.0)
