"""Add-on tests run inside Blender's Python (the ``bpy`` wheel); skipped elsewhere.

``make test`` runs them with the cached bpy venvs (see the Makefile). Timers do not tick
in background mode, so tests drain the worker exactly as the add-on's timer does.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import pytest

try:
    import bpy
except ImportError:  # plain Python: these tests run in the bpy venvs (make test-addon)
    bpy = None
collect_ignore_glob = ["test_*.py"] if bpy is None else []

ADDON_DIR = Path(__file__).resolve().parents[2] / "blender_addon"


def addon_deprecations(caught: list[warnings.WarningMessage]) -> list[str]:
    """The DeprecationWarnings raised by the add-on's own code, as ``file:line: message``."""
    return [f"{Path(w.filename).relative_to(ADDON_DIR.parent)}:{w.lineno}: {w.message}"
            for w in caught if issubclass(w.category, DeprecationWarning)
            and Path(w.filename).resolve().is_relative_to(ADDON_DIR)]


@pytest.fixture(autouse=True)
def no_deprecated_blender_api():
    """Fail any test in which the add-on uses API this Blender deprecates.

    5.1+ marks the old strip timing names "expected to be removed in Blender 6.0"; the add-on
    reads and writes timing through ``compat``. Every warning is recorded (not only the first
    per line) and the others are passed on to pytest's summary. The conform render runs in
    a child Python: there the same warnings are errors (``PYTHONWARNINGS``), so the render
    fails and so does the test.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONWARNINGS", "error::DeprecationWarning:__main__")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    ours = addon_deprecations(caught)
    for w in caught:
        if not (issubclass(w.category, DeprecationWarning)
                and Path(w.filename).resolve().is_relative_to(ADDON_DIR)):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    assert not ours, ("the add-on used API this Blender deprecates; go through "
                      "blender_addon/compat.py:\n  " + "\n  ".join(sorted(set(ours))))


def drain(timeout: float = 60.0) -> None:
    """Run the add-on's timer body until the interactive worker and the long jobs are done."""
    from blender_addon.work.worker import LONG, WORKER

    deadline = time.monotonic() + timeout
    while True:
        WORKER.drain()
        LONG.drain()
        if not WORKER.busy and not LONG.busy:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"still busy with {WORKER.current!r}, {list(LONG.jobs)}")
        time.sleep(0.01)


@pytest.fixture(scope="session")
def addon(tmp_path_factory):
    import addon_utils

    mod = addon_utils.enable("blender_addon", default_set=True, handle_error=None)
    assert mod is not None, "the add-on failed to register"
    yield mod
    addon_utils.disable("blender_addon", default_set=True)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    from kling_elements.sandbox import running

    with running(task_seconds=0.5, data_dir=tmp_path_factory.mktemp("sandbox")) as sb:
        yield sb


@pytest.fixture(scope="session")
def clip(tmp_path_factory):
    from kling_elements.sandbox.sample import make_clip

    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", width=1280, height=720,
                     fps=30, seconds=2.0, seed=3)


def connect_to(sandbox, monkeypatch):
    """Point the add-on's preferences at ``sandbox`` (its JWT keys), no keys from the
    environment; returns the preferences."""
    for name in ("KLINGAI_API_KEY", "KLINGAI_ACCESS_KEY", "KLINGAI_SECRET_KEY",
                 "KLINGAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    prefs = bpy.context.preferences.addons["blender_addon"].preferences
    prefs.region = "custom"
    prefs.custom_url = sandbox.base_url
    prefs.auth_mode = "keys"
    prefs.access_key = sandbox.access_key
    prefs.secret_key = sandbox.secret_key
    return prefs


@pytest.fixture
def connected(addon, sandbox, monkeypatch):
    return connect_to(sandbox, monkeypatch)


@pytest.fixture
def movie_strip(connected, clip):
    bpy.ops.wm.read_homefile(use_empty=True)
    from blender_addon import compat

    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 1280, 720
    scene.render.fps = 30
    editor = scene.sequence_editor_create()
    strip = compat.new_movie(editor, "plate", str(clip.path), 2, 1)
    editor.active_strip = strip
    return strip


_exit_status = {"code": 0}


def pytest_sessionfinish(session, exitstatus):
    _exit_status["code"] = int(exitstatus)


def pytest_unconfigure(config):
    """Leave without the interpreter's teardown: the bpy 4.2 module segfaults at exit once
    any ``bpy.app.timers`` callback was ever registered (also with a bare lambda, without
    this add-on), which would turn a green run red. 5.0 exits cleanly."""
    if bpy is not None and bpy.app.version < (5, 0, 0):
        import os
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status["code"])


@pytest.fixture
def faults(sandbox):
    """``faults(rule, ...)`` adds sandbox fault rules for this test; cleared after it."""
    from kling_elements.sandbox.faults import parse_rules

    def add(*rules: dict) -> None:
        sandbox.state.faults.add(parse_rules({"rules": list(rules)}))

    yield add
    sandbox.state.faults.clear()


def render_pixels(scene, folder, *points):
    """The rendered sequencer frame's RGBA at each view point (one render for all; view
    units are scene pixels, rows go bottom-up)."""
    import numpy as np

    scene.render.resolution_percentage = 25  # view units stay scene pixels at 100 %
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.filepath = str(folder / "frame.png")
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(scene.render.filepath)
    try:
        w, h = image.size
        pixels = np.array(image.pixels[:]).reshape(h, w, 4)
    finally:
        bpy.data.images.remove(image)
    return [pixels[int(vy / 4 + h / 2), int(vx / 4 + w / 2)] for vx, vy in points]
