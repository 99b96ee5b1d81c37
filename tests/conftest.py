"""Fixtures every test package shares (see ``tests/support/fixtures.py``).

``make_plate(width, height, fps, seconds, seed)`` encodes a sample clip once per run and
returns the same ``SampleClip`` to every later caller (tests only read it). ``admin`` is
plain HTTP with the API key for the test's ``sandbox``; after a test that used it, the
sandbox's fault rules are cleared.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import httpx

    from kling_elements.sandbox import RunningSandbox
    from kling_elements.sandbox.sample import SampleClip

MakePlate = Callable[..., "SampleClip"]


@pytest.fixture(scope="session")
def make_plate(tmp_path_factory: pytest.TempPathFactory) -> MakePlate:
    """``make_plate(width=1280, height=720, fps=30, seconds=2.0, seed=0, name=None)``: a
    sample clip (a ball on a textured background, see ``kling_elements.sandbox.sample``),
    encoded once; ``name`` gives it that file name (a link of its own to the same bytes)."""
    from kling_elements.sandbox.sample import make_clip

    folder = tmp_path_factory.mktemp("plates")
    made: dict[tuple, SampleClip] = {}

    def get(width: int = 1280, height: int = 720, fps: float = 30, seconds: float = 2.0,
            seed: int = 0, name: str | None = None) -> SampleClip:
        key = (width, height, fps, seconds, seed)
        if key not in made:
            made[key] = make_clip(folder / f"{width}x{height}-{fps}fps-{seconds}s-{seed}.mp4",
                                  width=width, height=height, fps=fps, seconds=seconds,
                                  seed=seed)
        clip = made[key]
        if name is None:
            return clip
        named = tmp_path_factory.mktemp("named") / name
        os.link(clip.path, named)
        return dataclasses.replace(clip, path=named)

    return get


@pytest.fixture(scope="session")
def _admins() -> Iterator[dict[str, httpx.Client]]:
    clients: dict[str, httpx.Client] = {}
    yield clients
    for api in clients.values():
        api.close()


@pytest.fixture
def admin(sandbox: RunningSandbox, _admins: dict[str, httpx.Client]) -> Iterator[httpx.Client]:
    """Plain HTTP with the API key, for API calls and the ``/sandbox/*`` tools (faults,
    clock, stats); one client per sandbox, kept for the run. The fault rules a test leaves
    behind are cleared after it, so none leaks into the next test."""
    from .support.sandbox import client, ok

    if sandbox.base_url not in _admins:
        _admins[sandbox.base_url] = client(sandbox)
    api = _admins[sandbox.base_url]
    yield api
    ok(api.delete("/sandbox/faults"))
