"""The add-on's publishing choices (preferences) used by the Source/Session step."""

from __future__ import annotations

import functools
import http.server
import sys
import threading

import pytest

from .conftest import bpy, drain


@pytest.fixture
def web_folder(tmp_path):
    """A plain static web server on loopback, standing in for a user's own file host."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def host_prefs(connected):
    yield connected
    connected.host_with = "sandbox"
    connected.host_command = ""


def _start(strip):
    from blender_addon.bridge.props import load_selection

    bpy.context.window_manager.kling.error = ""
    assert bpy.ops.kling.start_session() == {"FINISHED"}
    drain()
    return load_selection(strip)


def test_command_host_publishes_through_the_users_command(movie_strip, host_prefs, web_folder):
    folder, base = web_folder
    copy = ("import shutil, sys; shutil.copy(sys.argv[1], sys.argv[3]); "
            "print('copied'); print(sys.argv[4] + sys.argv[2])")
    host_prefs.host_with = "command"
    host_prefs.host_command = f'"{sys.executable}" -c "{copy}" {{path}} {{name}} "{folder}" {base}'
    state = _start(movie_strip)
    assert state is not None, bpy.context.window_manager.kling.error
    assert movie_strip.kling.published_url.startswith(base)
    assert (folder / movie_strip.kling.published_url[len(base):]).is_file()


def test_url_choice_needs_the_clips_url_and_says_where(movie_strip, host_prefs, web_folder):
    host_prefs.host_with = "url"
    assert _start(movie_strip) is None
    assert "paste it in Source > Video URL" in bpy.context.window_manager.kling.error
    folder, base = web_folder
    import shutil

    shutil.copy(bpy.path.abspath(movie_strip.filepath), folder / "plate.mp4")
    movie_strip.kling.video_url = base + "plate.mp4"
    state = _start(movie_strip)
    assert state is not None, bpy.context.window_manager.kling.error
    assert movie_strip.kling.published_url == base + "plate.mp4"


def test_s3_preferences_become_settings_with_env_filling_blanks(host_prefs, monkeypatch):
    from blender_addon.bridge.prefs import hosting_settings

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    host_prefs.host_with = "s3"
    host_prefs.s3_bucket = "plates"
    host_prefs.s3_region = "eu-west-1"
    host_prefs.s3_endpoint = "http://127.0.0.1:9000"
    settings = hosting_settings(host_prefs)
    assert (settings.kind, settings.s3_bucket, settings.s3_region) == ("s3", "plates", "eu-west-1")
    assert settings.s3_access_key_id == "AKIDENV"
    assert settings.s3_secret_access_key == "env-secret"
    assert "env-secret" not in repr(settings)
    assert settings.problems() == []
    host_prefs.s3_bucket = ""
    assert any("bucket" in p for p in hosting_settings(host_prefs).problems())


def test_sandbox_choice_with_a_remote_region_names_the_fix(movie_strip, host_prefs):
    from blender_addon.pure.settings import ClientSettings
    from blender_addon.work import session_calls as jobs
    from kling_elements.hosting import HostingSettings

    with pytest.raises(ValueError, match="choose S3, a command or per-clip URLs"):
        jobs.start_session(ClientSettings("https://api-singapore.klingai.com", "a", "b"),
                           bpy.path.abspath(movie_strip.filepath),
                           hosting=HostingSettings(kind="sandbox"))
