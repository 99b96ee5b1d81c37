"""Fixtures of the hosting tests: one moto S3 server and one valid sample clip for all.

Both are package-scoped (starting moto and encoding a clip are the slow parts); each test
uses a bucket of its own, so tests do not see each other's objects.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from kling_elements.sandbox.sample import SampleClip

from ..support.moto import create_bucket, moto_server

_buckets = itertools.count()


@pytest.fixture(scope="package")
def moto() -> Iterator[str]:
    """Base URL of a moto S3 server on loopback (signatures not checked)."""
    with moto_server() as base:
        yield base


@pytest.fixture
def bucket(moto: str) -> str:
    name = f"kling-test-{next(_buckets)}"
    create_bucket(moto, name)
    return name


@pytest.fixture(scope="package")
def clip(make_plate) -> SampleClip:
    """The smallest valid clip: 720x720, 24 fps, 2 s (48 frames)."""
    return make_plate(720, 720, 24, 2.0, name="clip.mp4")
