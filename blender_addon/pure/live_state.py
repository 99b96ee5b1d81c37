"""The add-on's copy of what Kling holds for each strip, kept out of Blender's undo.

A selection session with its points, and the tasks a create call paid for, live at Kling:
Ctrl+Z cannot take them back. A conformed clip is kept here for the same reason: it is the
result of a render that ran after the last undo step, and an undo must not orphan it.
Blender's undo restores strips from snapshots, which would show an older session (or none)
while Kling keeps every point, and could drop the record of a paid task. So the latest
known state is kept here, outside the undo system: every answer from Kling is written here
first and then onto the strip, and after each undo or redo the strips are brought back to
it (``live_sync``). Only a file load starts it afresh.

Entries hold plain values (strip property names and values) keyed by the strip's
``kling.live_key``, with the strip's last known place (scene, strip name, movie path) to
find it again after an undo that went back to before the strip had a key. No ``bpy`` here;
main thread only (nothing is shared with the worker).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["REGISTRY", "LiveStrip", "Place", "Registry"]


@dataclass(frozen=True)
class Place:
    """Where a strip was last seen: scene name, strip name, movie path as stored."""

    scene: str
    strip: str
    filepath: str


@dataclass
class LiveStrip:
    """What Kling holds for one strip.

    ``session`` maps strip property names to values (empty: no session known);
    ``session_id`` is the id inside its selection JSON. ``tasks`` maps each task's
    ``external_task_id`` to its record's property values, in the order they were made.
    ``conformed_path`` is the clip a Conform rendered for the strip (as stored on it), and
    ``conformed_token`` names that delivery (``""``: none known), so that forgetting it
    (Clear Conform, an undoable step) is told apart from a later Conform of the same file.
    ``copy_of`` names the strip this one was split from as a duplicate (``""``: none).
    """

    place: Place
    session_id: str = ""
    session: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    conformed_path: str = ""
    conformed_token: str = ""
    copy_of: str = ""


class Registry:
    """Latest known Kling state per strip key; ``epoch`` changes when a file is loaded."""

    def __init__(self) -> None:
        self._entries: dict[str, LiveStrip] = {}
        self._keys_at: dict[Place, str] = {}
        self.moved: dict[str, str] = {}
        """Files moved next to the saved .blend after that save: absolute temporary path ->
        the stored path of the copy (an undo must not point a strip back at the first)."""
        self.epoch = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget everything (another file was loaded); answers for the old file are stale."""
        self._entries.clear()
        self._keys_at.clear()
        self.moved.clear()
        self.epoch += 1

    def get(self, key: str) -> LiveStrip | None:
        return self._entries.get(key)

    def items(self) -> list[tuple[str, LiveStrip]]:
        """Every key with its entry (a list: the caller may update entries meanwhile)."""
        return list(self._entries.items())

    def key_at(self, place: Place) -> str | None:
        """The key last seen at ``place`` (an undo may have taken the key off the strip)."""
        return self._keys_at.get(place)

    def place(self, key: str, place: Place) -> LiveStrip:
        """The entry of ``key``, created if new, now known to be at ``place``."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = LiveStrip(place)
        elif entry.place != place:
            entry.place = place
        self._keys_at[place] = key
        return entry

    def set_session(self, key: str, place: Place, session_id: str,
                    values: dict[str, Any]) -> LiveStrip:
        """Record the strip's session (``values`` update the known ones)."""
        entry = self._entries.get(key) or self.place(key, place)
        if entry.session_id != session_id:
            entry.session_id = session_id
        entry.session.update(values)
        return entry

    def update_task(self, key: str, place: Place, external: str,
                    values: dict[str, Any]) -> dict[str, Any]:
        """Merge ``values`` into the task's record (created if new); returns the record."""
        entry = self._entries.get(key) or self.place(key, place)
        record = entry.tasks.setdefault(external, {"external_task_id": external})
        record.update(values)
        return record

    def set_conformed(self, key: str, place: Place, path: str, token: str) -> LiveStrip:
        """Record the strip's conformed clip, delivered as ``token``."""
        entry = self._entries.get(key) or self.place(key, place)
        entry.conformed_path, entry.conformed_token = path, token
        return entry

    def task(self, key: str, external: str) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        return None if entry is None else entry.tasks.get(external)


REGISTRY = Registry()
