"""Helpers of the end-to-end tests: the sandbox's fault/stats tools and media checks."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import av
import httpx
import numpy as np

from kling_elements.sandbox.faults import ROUTES

from ..sandbox.sandbox_support import REMOVE_PROMPT, ok

# The sandbox refuses such a task as a content-policy violation, without rendering it.
REFUSED_PROMPT = REMOVE_PROMPT + " [[fail]]"
# A JWT as the client sends it: base64url of '{"' starts both header and payload.
JWT_PATTERN = re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{16,}")


def add_faults(admin: httpx.Client, *rules: dict) -> list[dict]:
    return ok(admin.post("/sandbox/faults", json={"rules": list(rules)}))["rules"]


def pending_faults(admin: httpx.Client) -> list[dict]:
    return ok(admin.get("/sandbox/faults"))["rules"]


def created(admin: httpx.Client) -> dict[str, int]:
    """How many tasks each external_task_id created, as the sandbox counted them."""
    return ok(admin.get("/sandbox/stats"))["created"]


def advance(admin: httpx.Client, seconds: float) -> None:
    ok(admin.post("/sandbox/clock", json={"advance_s": seconds}))


def set_tripwires(admin: httpx.Client) -> list[dict]:
    """One error rule on every route: any request that reaches the sandbox consumes one."""
    return add_faults(admin, *({"route": route, "times": 1,
                                "error": {"http": 500, "code": 5000}} for route in ROUTES))


def decode(path: Path, keep: tuple[int, ...] = ()) -> tuple[int, dict[int, np.ndarray]]:
    """Decode every frame of ``path`` with PyAV (which raises on a damaged file): the frame
    count, and the frames numbered in ``keep`` as RGB arrays."""
    count, kept = 0, {}
    with av.open(str(path)) as container:
        for count, frame in enumerate(container.decode(video=0), start=1):
            if count - 1 in keep:
                kept[count - 1] = frame.to_ndarray(format="rgb24")
    return count, kept


def frame_count(path: Path) -> int:
    return decode(path)[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
