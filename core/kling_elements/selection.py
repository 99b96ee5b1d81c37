"""The bookkeeping of one selection session: frames, the exact points sent, masks, expiry.

Kling only deletes a point whose coordinates are bit-identical to the ones added, and
refuses an 11th frame or an 11th point on a frame. The only way to honour that without a
round trip is to remember exactly what was sent. ``SelectionState`` is that memory; it is
plain data (``to_dict``/``from_dict`` round-trip through JSON exactly, floats included), so
the CLI keeps it in a state file and the add-on in the .blend.

It also remembers the session's video (``video_url`` or ``video_id``): with it, the client
can replace a session that expired, or whose server-side points are in doubt after a lost
answer, by a new one holding exactly these points (``Client.restore``).

Points are a list per frame, duplicates included, kept exactly as Kling keeps them: adding
a point twice stores it twice, and one delete removes one copy.

It keeps the running cost of the session too: ``spent`` adds up the deductions Kling
reported for every selection call made for these marks (init, add, delete, clear,
preview), restores included, and ``restore_spent`` / ``restores`` say how much of that the
automatic restores took. A restore moves the state to a new session id but carries these
totals on, so "this session" in a user's eyes (the marks on their clip) has one total.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .cost import Cost
from .errors import ValidationError
from .validate import MAX_FRAMES_PER_SESSION, MAX_POINTS_PER_FRAME, SESSION_TTL_S

__all__ = ["Point", "SelectionState", "check_add", "same_point"]

Point = tuple[float, float]


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


def same_point(a: Point, b: Point) -> bool:
    """Bit-identical comparison (so ``-0.0`` differs from ``0.0``, as it does for Kling)."""
    return _bits(a[0]) == _bits(b[0]) and _bits(a[1]) == _bits(b[1])


def check_add(marked: Mapping[int, list[Point]], frame_index: int, points: list[Point]) -> None:
    """Refuse adding ``points`` on ``frame_index`` to the ``marked`` points (frame -> points)
    when it would break the per-frame or per-session limit; usable before a session exists."""
    existing = marked.get(frame_index, [])
    frames = sorted(frame for frame, pts in marked.items() if pts)
    if not existing and len(frames) >= MAX_FRAMES_PER_SESSION:
        raise ValidationError(
            f"frame {frame_index} would be the {len(frames) + 1}th marked frame; a "
            f"session allows {MAX_FRAMES_PER_SESSION}: mark points on an already marked "
            f"frame ({', '.join(map(str, frames))}) or delete a frame's points"
        )
    if len(existing) + len(points) > MAX_POINTS_PER_FRAME:
        raise ValidationError(
            f"frame {frame_index} has {len(existing)} point(s); adding {len(points)} would "
            f"exceed {MAX_POINTS_PER_FRAME} per frame: delete some first"
        )


@dataclass
class SelectionState:
    """What the client sent in one session, and the masks Kling answered with."""

    session_id: str
    total_frames: int | None = None
    fps: float | None = None
    duration_s: float | None = None
    started_at: float = field(default_factory=time.time)
    points: dict[int, list[Point]] = field(default_factory=dict)
    masks: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    video_url: str | None = None
    video_id: str | None = None
    spent: Cost = field(default_factory=Cost)
    restore_spent: Cost = field(default_factory=Cost)
    restores: int = 0

    def charge(self, cost: Cost) -> None:
        """Add a reported deduction to the session's running total."""
        self.spent = self.spent + cost

    def charge_restore(self, cost: Cost) -> None:
        """Count one restore and what it cost (also added to ``spent``)."""
        self.restores += 1
        self.restore_spent = self.restore_spent + cost
        self.spent = self.spent + cost
    # The normalized video's frame, to read the masks' ``size`` against (None: unknown).
    width: int | None = None
    height: int | None = None

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """``(height, width)`` of the session's frame, when known."""
        return (self.height, self.width) if self.height and self.width else None

    @property
    def restorable(self) -> bool:
        """Whether the video is known, so a new session can be started on it."""
        return bool(self.video_url or self.video_id)

    @property
    def expires_at(self) -> float:
        return self.started_at + SESSION_TTL_S

    def seconds_left(self, now: float | None = None) -> float:
        return self.expires_at - (time.time() if now is None else now)

    def frames(self) -> list[int]:
        return sorted(frame for frame, pts in self.points.items() if pts)

    def check_add(self, frame_index: int, points: list[Point]) -> None:
        """Refuse, before sending, an add that would break the per-frame or per-session limit."""
        check_add(self.points, frame_index, points)

    def exact_points(self, frame_index: int, points: list[Point]) -> list[Point]:
        """``points`` if each was added on that frame (bit-identical), else a ValidationError.

        Copies count: deleting a point twice in one call needs it added twice.
        """
        existing = self.points.get(frame_index, [])
        left = list(existing)
        for point in points:
            found = next((i for i, known in enumerate(left) if same_point(point, known)), None)
            if found is not None:
                del left[found]
            else:
                shown = ", ".join(f"({x!r}, {y!r})" for x, y in existing) or "none"
                raise ValidationError(
                    f"point ({point[0]!r}, {point[1]!r}) was not added on frame {frame_index} "
                    f"(points there: {shown}); delete exactly a point that was added"
                )
        return list(points)

    def record(self, frame_index: int, points: list[Point], masks: list[dict[str, Any]],
               *, added: bool) -> None:
        """Apply a confirmed add/delete and store the frame's new masks.

        A delete removes one copy per point sent, as Kling does, so the two lists stay equal
        even when a point was added twice.
        """
        current = self.points.setdefault(frame_index, [])
        if added:
            current.extend(points)
        else:
            for point in points:
                found = next((i for i, p in enumerate(current) if same_point(p, point)), None)
                if found is not None:
                    del current[found]
        if current:
            self.masks[frame_index] = masks
        else:
            self.points.pop(frame_index, None)
            self.masks.pop(frame_index, None)

    def clear(self) -> None:
        self.points.clear()
        self.masks.clear()

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "total_frames": self.total_frames,
            "fps": self.fps,
            "duration_s": self.duration_s,
            "started_at": self.started_at,
            "points": {str(f): [list(p) for p in pts] for f, pts in self.points.items()},
            "masks": {str(f): m for f, m in self.masks.items()},
            "video_url": self.video_url,
            "video_id": self.video_id,
            "cost": self.spent.to_dict(),
            "restore_cost": self.restore_spent.to_dict(),
            "restores": self.restores,
            "width": self.width,
            "height": self.height,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SelectionState:
        return cls(
            session_id=data["session_id"],
            total_frames=data.get("total_frames"),
            fps=data.get("fps"),
            duration_s=data.get("duration_s"),
            started_at=data.get("started_at", time.time()),
            points={
                int(f): [(float(x), float(y)) for x, y in pts]
                for f, pts in data.get("points", {}).items()
            },
            masks={int(f): m for f, m in data.get("masks", {}).items()},
            video_url=data.get("video_url") or None,
            video_id=data.get("video_id") or None,
            spent=Cost.from_dict(data.get("cost")),
            restore_spent=Cost.from_dict(data.get("restore_cost")),
            restores=int(data.get("restores") or 0),
            width=data.get("width") or None,
            height=data.get("height") or None,
        )
