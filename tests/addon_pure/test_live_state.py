"""The registry of Kling's state per strip: what undo must not take back (no Blender needed)."""

from __future__ import annotations

from blender_addon.pure.live_state import Place, Registry

PLATE = Place("Scene", "plate", "//clip.mp4")


def test_a_session_answer_updates_what_is_known_and_keeps_the_rest():
    registry = Registry()
    registry.set_session("k1", PLATE, "s1", {"selection_json": "{a}", "published_url": "u",
                                             "session_first_frame": 3})
    entry = registry.set_session("k1", PLATE, "s1", {"selection_json": "{a, b}"})
    assert entry.session_id == "s1"
    assert entry.session == {"selection_json": "{a, b}", "published_url": "u",
                             "session_first_frame": 3}


def test_task_records_merge_by_external_id_in_creation_order():
    registry = Registry()
    registry.update_task("k1", PLATE, "ext-1", {"status": "sending", "prompt": "p"})
    registry.update_task("k1", PLATE, "ext-2", {"status": "sending"})
    registry.update_task("k1", PLATE, "ext-1", {"status": "succeed", "task_id": "t1"})
    tasks = registry.get("k1").tasks
    assert list(tasks) == ["ext-1", "ext-2"]
    assert tasks["ext-1"] == {"external_task_id": "ext-1", "status": "succeed", "prompt": "p",
                              "task_id": "t1"}
    assert registry.task("k1", "ext-3") is None and registry.task("k9", "ext-1") is None


def test_the_place_finds_the_key_an_undo_took_off_the_strip():
    registry = Registry()
    registry.place("k1", PLATE)
    renamed = Place("Scene", "hero", "//clip.mp4")
    registry.place("k1", renamed)
    assert registry.get("k1").place == renamed
    assert registry.key_at(renamed) == "k1"
    assert registry.key_at(PLATE) == "k1"  # the name it had before the rename still leads here
    registry.place("k2", PLATE)  # another strip now holds that name
    assert registry.key_at(PLATE) == "k2"
    assert registry.key_at(Place("Scene", "plate", "//other.mp4")) is None


def test_a_file_load_forgets_everything_and_changes_the_epoch():
    registry = Registry()
    registry.set_session("k1", PLATE, "s1", {"selection_json": "{}"})
    epoch = registry.epoch
    registry.clear()
    assert len(registry) == 0 and registry.get("k1") is None and registry.key_at(PLATE) is None
    assert registry.epoch != epoch
