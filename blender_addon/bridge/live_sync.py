"""Keeps strips in step with ``live_state`` through worker answers, undo, redo and file loads.

What it guarantees:

* Ctrl+Z / Ctrl+Shift+Z never take back what Kling holds. After every undo and redo each
  strip shows the registry's session (all points sent, the latest masks) and every task
  record, including one the undo removed; a result strip the undo removed along with its
  record is imported again by the task poller.
* A conformed clip is never orphaned by an undo. The Conform render ends after the last
  undo step, so its path is delivered like a Kling answer (registry first, then the strip)
  and shown again after every undo and redo, as are the paths a save moved it to (a copy
  that ends after the save too: ``deliver_moved_file``).
* What the user forgot on purpose stays undoable. Reset, Forget Task and Clear Conform add
  the forgotten session id, ``external_task_id`` or ``conformed:<token>`` (one Conform's
  delivery) to the strip's ``kling.forgotten``, an ordinary property: undoing them brings
  the session, record or clip back (Kling, or the disk, still has it), redoing forgets it
  again, and nothing here revives what the restored strip says was forgotten. A new Conform
  is a new delivery: forgetting an earlier one (even of the same file) does not hide it.
* No ``bpy`` object crosses a worker round trip. Operators capture a ``StripRef`` (plain
  strings); the answer is written to the registry first, then to the strip found again by
  its key, or at its last place when an undo took the key off (undo of Start Editing).
* A file load rebuilds the registry from that file: a load is not an undo. Answers to
  requests made before the load are dropped (their file is gone; a saved task record
  resumes from its ``external_task_id``).

* Never two strips on one Kling session. Duplicating a strip (Shift+D, copy and paste, a
  scene copy) copies every property, Kling's too. The strip the key was given to (the one
  at the key's known place) is the original: it keeps the session, the marks, every task
  record and the tracking preview, so a paid result is imported once, on it, and nothing
  paid is lost. Each copy gets a key of its own and none of those: it needs Start Editing
  (the panel says it is a copy; its marks are not replayed, as each add may cost), and
  keeps its edit settings and conformed clip. Copies are split on the depsgraph update
  after the operator that made them, after undo/redo (a redo brings a copy back with the
  key and state it had) and on file load; ``ref`` splits one nobody split yet.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

import bpy

from .. import compat
from ..pure.live_state import REGISTRY, LiveStrip, Place
from .props_edit import KlingTaskRecord

__all__ = ["SESSION_FIELDS", "StripRef", "copied_from", "deliver_conformed",
           "deliver_moved_file", "deliver_session", "deliver_task", "find", "forget",
           "forget_conformed", "movie_strips", "rebuild", "reconcile", "ref",
           "remember_tasks", "resync", "split_copies", "split_if_copy", "split_new_copies",
           "task_values", "undo_started"]

SESSION_FIELDS = ("selection_json", "published_url", "session_first_frame",
                  "session_file_frames")
TASK_FIELDS = tuple(KlingTaskRecord.__annotations__)


@dataclass(frozen=True)
class StripRef:
    """What a worker callback needs to find its strip again: no Blender object."""

    key: str
    place: Place
    epoch: int


def _place(strip: Any) -> Place:
    return Place(strip.id_data.name, strip.name, strip.filepath)


def movie_strips(scene=None):
    """Every movie strip of ``scene`` (default: of every scene), inside meta strips too."""
    for each in bpy.data.scenes if scene is None else (scene,):
        if each.sequence_editor is not None:
            yield from (s for s in compat.strips(each.sequence_editor) if s.type == "MOVIE")


def _strip_at(place: Place, same_file: bool = False):
    strip = compat.strip_by_name(bpy.data.scenes.get(place.scene), place.strip)
    if strip is None or strip.type != "MOVIE":
        return None
    return strip if not same_file or strip.filepath == place.filepath else None


def _forgotten(strip: Any) -> set[str]:
    return set(strip.kling.forgotten.split())


def _set(target: Any, values: dict[str, Any]) -> None:
    for name, value in values.items():
        if getattr(target, name) != value:
            setattr(target, name, value)


# --- from strips to the registry -------------------------------------------------------


def remember_tasks(strip: Any) -> None:
    """Record the strip's task records as they are now (after a local change to them)."""
    key, place = strip.kling.live_key, _place(strip)
    for record in strip.kling.tasks:
        REGISTRY.update_task(key, place, record.external_task_id,
                             {name: getattr(record, name) for name in TASK_FIELDS})


def _adopt(strip: Any, key: str) -> None:
    """Take what the strip shows as the latest known state (a file the registry never saw)."""
    place = _place(strip)
    REGISTRY.place(key, place)
    text = strip.kling.selection_json
    if text:
        REGISTRY.set_session(key, place, json.loads(text).get("session_id", ""),
                             {name: getattr(strip.kling, name) for name in SESSION_FIELDS})
    if strip.kling.conformed_path:
        REGISTRY.set_conformed(key, place, strip.kling.conformed_path, uuid.uuid4().hex)
    remember_tasks(strip)


def _rekey(strip: Any) -> str:
    key = uuid.uuid4().hex
    strip.kling.live_key = key
    _adopt(strip, key)
    return key


def _is_copy(strip: Any, key: str) -> bool:
    """Whether another strip, at the key's known place, holds the same key (a duplicate)."""
    entry = REGISTRY.get(key)
    owner = _strip_at(entry.place) if entry is not None else None
    return (owner is not None and owner.kling.live_key == key
            and owner.as_pointer() != strip.as_pointer())


def ref(strip: Any) -> StripRef:
    """Key the strip if it has no key of its own yet; capture it for a worker answer.

    A duplicate not split yet (made through Python, with no depsgraph update since) is
    split first, so read the strip's session *after* calling this.
    """
    split_if_copy(strip)
    key = strip.kling.live_key
    if not key:
        key = _rekey(strip)
    elif REGISTRY.get(key) is None:
        _adopt(strip, key)
    place = _place(strip)
    REGISTRY.place(key, place)
    return StripRef(key, place, REGISTRY.epoch)


# --- duplicates ------------------------------------------------------------------------

_COPY_CLEARS = {"selection_json": "", "published_url": "", "session_first_frame": 0,
                "session_file_frames": 0, "preview_strip": "", "forgotten": "",
                "active_task": 0}
"""What a duplicate does not inherit: the session, and what only the original may use."""
_undoing = {"now": False}
"""Set from ``undo_pre``/``redo_pre`` until ``reconcile``: an undo's depsgraph updates leave
copies to it."""


def split_if_copy(strip: Any) -> None:
    """Split ``strip`` from its original if it is a duplicate nobody split yet (call before
    reading its session to send anything)."""
    key = strip.kling.live_key
    if key and _is_copy(strip, key):
        split_copies()


def copied_from(strip: Any) -> str:
    """The name of the strip ``strip`` was split from as a duplicate, or ``""`` (read only:
    the panel asks on redraw)."""
    entry = REGISTRY.get(strip.kling.live_key) if strip.kling.live_key else None
    return entry.copy_of if entry is not None else ""


def _original(key: str, holders: list[Any]) -> Any:
    """Of the strips holding ``key``, the one it was given to: the one at its known place."""
    entry = REGISTRY.get(key)
    if entry is not None:
        for strip in holders:
            if _place(strip) == entry.place:
                return strip
        for strip in holders:
            if (strip.id_data.name, strip.name) == (entry.place.scene, entry.place.strip):
                return strip
    return holders[0]


def _split(copy: Any, original: Any, held: set[str], reuse: bool) -> None:
    """Give ``copy`` its own key and no session, task or preview of ``original``.

    ``reuse``: an undo or redo brought back a copy as Blender duplicated it; the key it
    was given at its place (if still free) is its own, with what Kling holds for it.
    """
    kling = copy.kling
    _set(kling, _COPY_CLEARS)
    kling.tasks.clear()
    own = REGISTRY.key_at(_place(copy)) if reuse else None
    entry = REGISTRY.get(own) if own else None
    if entry is not None and own not in held and entry.copy_of:
        kling.live_key = own
        _restore(copy, entry)
    else:
        own = uuid.uuid4().hex
        kling.live_key = own
        _adopt(copy, own)
        REGISTRY.get(own).copy_of = original.name
    held.add(own)


def split_copies(reuse: bool = False) -> list[str]:
    """Split every duplicated strip from its original; returns the copies' names.

    Rule (never two strips on one Kling session; a paid result imported once, on the
    original; nothing paid lost): Shift+D, copy and paste or a scene copy copy every
    property, Kling's too. The strip the key was given to keeps its session, marks, task
    records and tracking preview; each copy gets a key of its own and starts with none of
    them (the panel says it is a copy: Start Editing gives it its own session; its marks
    are not replayed, as each add may cost). Its edit settings and conformed clip stay.
    """
    holders: dict[str, list[Any]] = {}
    for strip in movie_strips():
        if strip.kling.live_key:
            holders.setdefault(strip.kling.live_key, []).append(strip)
    held = set(holders)
    names = []
    for key, strips in holders.items():
        if len(strips) < 2:
            continue
        original = _original(key, strips)
        for strip in strips:
            if strip.as_pointer() != original.as_pointer():
                _split(strip, original, held, reuse)
                names.append(strip.name)
    return names


def forget(strip: Any, ident: str) -> None:
    """Mark a session id or task id as forgotten here on purpose (an undoable edit)."""
    if ident and ident not in _forgotten(strip):
        strip.kling.forgotten = f"{strip.kling.forgotten} {ident}".strip()


def _conformed_mark(token: str) -> str:
    return f"conformed:{token}"


def forget_conformed(strip: Any) -> None:
    """Clear Conform: the strip stops using its conformed clip (an undoable edit)."""
    entry = REGISTRY.get(strip.kling.live_key) if strip.kling.live_key else None
    if entry is not None and entry.conformed_token:
        forget(strip, _conformed_mark(entry.conformed_token))
    strip.kling.conformed_path = ""


# --- from the registry to strips -------------------------------------------------------


def _write_session(strip: Any, entry: LiveStrip) -> None:
    if entry.session and entry.session_id not in _forgotten(strip):
        _set(strip.kling, entry.session)


def _write_conformed(strip: Any, entry: LiveStrip) -> None:
    if entry.conformed_token and _conformed_mark(entry.conformed_token) not in \
            _forgotten(strip):
        _set(strip.kling, {"conformed_path": entry.conformed_path})


def _write_task(strip: Any, values: dict[str, Any]):
    """The strip's record of the task, brought up to ``values`` (added if missing)."""
    external = values["external_task_id"]
    if external in _forgotten(strip):
        return None
    record = next((r for r in strip.kling.tasks if r.external_task_id == external), None)
    values = dict(values)
    imported = values.pop("imported_strip", "")
    if record is None:
        record = strip.kling.tasks.add()
        # The undo removed the record, and the imported strip with it unless it is still
        # there: an empty name makes the poller import the downloaded result again.
        if compat.strip_by_name(strip.id_data, imported) is not None:
            record.imported_strip = imported
    _set(record, values)
    return record


def _order_tasks(strip: Any, externals: list[str]) -> None:
    order = {external: index for index, external in enumerate(externals)}
    tasks = strip.kling.tasks

    def rank(index: int) -> int:
        return order.get(tasks[index].external_task_id, len(order) + index)

    for target in range(len(tasks)):
        best = min(range(target, len(tasks)), key=rank)
        if best != target:
            tasks.move(best, target)


def _restore(strip: Any, entry: LiveStrip) -> None:
    _write_session(strip, entry)
    _write_conformed(strip, entry)
    for values in entry.tasks.values():
        _write_task(strip, values)
    _order_tasks(strip, list(entry.tasks))
    remember_tasks(strip)  # the record's imported strip is the restored file's


def find(where: StripRef):
    """The strip ``where`` was captured from, found again, or None (deleted, other file)."""
    if where.epoch != REGISTRY.epoch:
        return None
    entry = REGISTRY.get(where.key)
    place = entry.place if entry is not None else where.place
    strip = _strip_at(place)
    if strip is not None and strip.kling.live_key == where.key:
        return strip
    strip = next((s for s in movie_strips() if s.kling.live_key == where.key), None)
    if strip is not None:
        return strip
    for known in dict.fromkeys((place, where.place)):
        strip = _strip_at(known, same_file=True)
        if strip is not None and not strip.kling.live_key:  # undo went back before the key
            strip.kling.live_key = where.key
            if entry is not None:
                _restore(strip, entry)
            return strip
    return None


def deliver_session(where: StripRef, session_id: str, values: dict[str, Any]):
    """Store Kling's answer about the session; show it on the strip. Returns the strip."""
    if where.epoch != REGISTRY.epoch:
        return None
    entry = REGISTRY.set_session(where.key, where.place, session_id, values)
    strip = find(where)
    if strip is not None:
        _write_session(strip, entry)
    return strip


def deliver_conformed(where: StripRef, path: str):
    """Store the clip a Conform rendered for the strip; show it there. Returns the strip."""
    if where.epoch != REGISTRY.epoch:
        return None
    entry = REGISTRY.set_conformed(where.key, where.place, path, uuid.uuid4().hex)
    strip = find(where)
    if strip is not None:
        _write_conformed(strip, entry)
    return strip


def deliver_task(where: StripRef, external: str, values: dict[str, Any]):
    """Store what is known of a task; returns ``(strip, record)`` or None if not shown."""
    if where.epoch != REGISTRY.epoch:
        return None
    fields = REGISTRY.update_task(where.key, where.place, external, values)
    strip = find(where)
    record = _write_task(strip, fields) if strip is not None else None
    return None if record is None else (strip, record)


MOVED_TASK_FIELDS = ("result_path", "watermark_path")


def _is_file(stored: str, path: str) -> bool:
    """Whether ``stored`` (a strip's or record's path) names the file at absolute ``path``."""
    return bool(stored) and os.path.normpath(bpy.path.abspath(stored)) == path


def deliver_moved_file(old: str, new: str) -> None:
    """The file at absolute path ``old`` was moved to ``new`` (as stored) after the save
    that asked for it (a copy across filesystems ends later, on a long job).

    Every task record and conformed clip known to use it uses ``new`` from now on, and
    after every undo and redo any movie strip still naming ``old`` (an imported result, a
    tracking preview, restored as the undo step had it) is pointed at ``new``: the
    temporary file is deleted by a later save. Registry only here: the caller repoints
    the strips of the moment. A conformed clip keeps its delivery token, so a Clear Conform
    of it still holds (and still undoes to the moved path).
    """
    REGISTRY.moved[old] = new
    for key, entry in REGISTRY.items():
        for external, values in list(entry.tasks.items()):
            moved = {name: new for name in MOVED_TASK_FIELDS
                     if _is_file(values.get(name, ""), old)}
            if moved:
                REGISTRY.update_task(key, entry.place, external, moved)
        if entry.conformed_token and _is_file(entry.conformed_path, old):
            REGISTRY.set_conformed(key, entry.place, new, entry.conformed_token)


def _repoint_moved_files() -> None:
    for strip in movie_strips():
        new = REGISTRY.moved.get(os.path.normpath(bpy.path.abspath(strip.filepath)))
        if new is not None:
            strip.filepath = new


def task_values(where: StripRef, external: str) -> dict[str, Any] | None:
    """The task record as last known (a copy), whatever undo did to the strip."""
    if where.epoch != REGISTRY.epoch:
        return None
    values = REGISTRY.task(where.key, external)
    return None if values is None else dict(values)


# --- handlers --------------------------------------------------------------------------


@bpy.app.handlers.persistent
def undo_started(*_args) -> None:
    """``undo_pre`` / ``redo_pre``: duplicates are split by ``reconcile`` once it is over."""
    _undoing["now"] = True


@bpy.app.handlers.persistent
def split_new_copies(*_args) -> None:
    """``depsgraph_update_post``: runs after every operator (Shift+D, paste, scene copy), so
    a duplicate is split before anything can send for it. Costs one property read per movie
    strip; writes only when a copy is found."""
    if not _undoing["now"] and len(REGISTRY):
        split_copies()


@bpy.app.handlers.persistent
def reconcile(*_args) -> None:
    """``undo_post`` / ``redo_post``: show on every strip what Kling holds."""
    _undoing["now"] = False
    if REGISTRY.moved:
        _repoint_moved_files()
    if not len(REGISTRY):
        return
    split_copies(reuse=True)  # a redo can bring a copy back as Blender duplicated it
    holders: dict[str, Any] = {}
    unkeyed = []
    for strip in movie_strips():
        key = strip.kling.live_key
        if key:
            holders[key] = strip
        else:
            unkeyed.append(strip)
    for strip in unkeyed:
        # Undo went back to before this strip was keyed (Start Editing): the key last seen
        # at its place is its own.
        key = REGISTRY.key_at(_place(strip))
        if key and key not in holders and REGISTRY.get(key) is not None:
            strip.kling.live_key = key
            holders[key] = strip
    for key, strip in holders.items():
        entry = REGISTRY.get(key)
        if entry is None:
            _adopt(strip, key)  # a strip the registry never saw (add-on enabled since)
            continue
        _restore(strip, entry)
        REGISTRY.place(key, _place(strip))


@bpy.app.handlers.persistent
def rebuild(*_args) -> None:
    """``load_post`` (and once after the add-on is enabled): the file's strips are the state
    to start from.

    A file saved by an earlier version may hold copies that share their original's key,
    session or task records: the first strip holding each is the original, the others are
    split from it (``split_copies``' rule).
    """
    REGISTRY.clear()
    _undoing["now"] = False
    split_copies()
    sessions: dict[str, str] = {}
    externals: set[str] = set()
    for strip in movie_strips():
        kling = strip.kling
        if not (kling.live_key or kling.selection_json or len(kling.tasks)):
            continue
        original = _drop_shared(strip, sessions, externals)
        if kling.live_key:
            _adopt(strip, kling.live_key)
        else:
            _rekey(strip)
        if original:
            REGISTRY.get(kling.live_key).copy_of = original


def _drop_shared(strip: Any, sessions: dict[str, str], externals: set[str]) -> str:
    """Clear what ``strip`` shares with a strip seen before it (an older version's copy);
    returns that strip's name if the session was shared, else ``""``."""
    kling = strip.kling
    session_id = json.loads(kling.selection_json).get("session_id", "") \
        if kling.selection_json else ""
    original = sessions.get(session_id, "") if session_id else ""
    if original:
        _set(kling, _COPY_CLEARS)
    elif session_id:
        sessions[session_id] = strip.name
    for index in reversed(range(len(kling.tasks))):
        external = kling.tasks[index].external_task_id
        if external in externals:
            kling.tasks.remove(index)
        else:
            externals.add(external)
    return original


@bpy.app.handlers.persistent
def resync(*_args) -> None:
    """``save_post``: saving moves result files and conformed clips next to the .blend;
    record the new paths."""
    for strip in movie_strips():
        entry = REGISTRY.get(strip.kling.live_key) if strip.kling.live_key else None
        if entry is None:
            continue
        remember_tasks(strip)
        path = strip.kling.conformed_path
        if path and entry.conformed_token and path != entry.conformed_path:
            REGISTRY.set_conformed(strip.kling.live_key, _place(strip), path,
                                   entry.conformed_token)
