"""Where an imported result goes in the timeline; plain arithmetic, no ``bpy``.

A result covers the same time as its source, so it goes on the first channel above the
source that is free over the source's visible range: nothing the editor placed is moved or
covered, and the result sits directly above what it replaces.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["MAX_CHANNEL", "first_free_channel", "result_name"]

MAX_CHANNEL = 128  # Blender's sequencer has channels 1-128
MAX_NAME_BYTES = 63


def first_free_channel(occupied: Iterable[tuple[int, int, int]], above: int, start: int,
                       end: int) -> int:
    """The lowest channel over ``above`` with no strip overlapping frames ``[start, end)``.

    ``occupied`` holds ``(channel, start, end)`` of the existing strips (end exclusive).
    Raises ValueError when every channel up to 128 is taken there.
    """
    busy = {channel for channel, s, e in occupied if s < end and start < e}
    for channel in range(above + 1, MAX_CHANNEL + 1):
        if channel not in busy:
            return channel
    raise ValueError(f"no free channel above {above} over frames {start}-{end}: every channel "
                     f"up to {MAX_CHANNEL} has a strip there; free one and import again")


def result_name(source: str, label: str) -> str:
    """``"<source> · <label>"`` within Blender's 63-byte name limit (the source is shortened)."""
    suffix = f" · {label}"
    room = MAX_NAME_BYTES - len(suffix.encode())
    head = source.encode()[:max(room, 0)].decode(errors="ignore")
    return head + suffix
