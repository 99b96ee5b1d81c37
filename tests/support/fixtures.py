"""Fixture factories shared by every test package, so a package states only what differs.

A package's ``conftest.py`` says ``sandbox = sandbox_fixture(task_seconds=0.3)``: a
sandbox of its own (package-scoped by default), with exactly those options. The root
``conftest.py`` builds ``admin`` (plain HTTP with the API key) for whichever sandbox a
test uses, clears the fault rules a test leaves behind, and makes sample clips once per
run (``make_plate``), since encoding them is the slow part of most fixtures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kling_elements.sandbox import RunningSandbox, running


def sandbox_fixture(*, scope: str = "package", name: str = "sandbox",
                    **options: Any) -> Callable[..., Iterator[RunningSandbox]]:
    """A fixture running one sandbox with ``options`` (``SandboxConfig`` fields) for its
    scope; assign it to a module-level name of a conftest or test module."""

    @pytest.fixture(scope=scope, name=name)
    def _sandbox() -> Iterator[RunningSandbox]:
        with running(**options) as sb:
            yield sb

    return _sandbox
