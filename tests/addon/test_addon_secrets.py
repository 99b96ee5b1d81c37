"""No key reaches a saved .blend: the secret key, the API key and the JWT sent are absent."""

from __future__ import annotations

import gzip

from .conftest import bpy, drain


def test_saved_blend_holds_no_secret_and_no_jwt(movie_strip, clip, connected, tmp_path):
    from blender_addon.bridge.prefs import client_settings
    from blender_addon.ops import select as ops_select
    from blender_addon.work import session_calls as jobs

    connected.api_key = "sandbox-api-key-never-in-a-blend"
    assert bpy.ops.kling.start_session() == {"FINISHED"}
    drain()
    ops_select.request_add(bpy.context, movie_strip, 0, [clip.center(0)])
    drain()
    settings = client_settings()
    jwt = jobs.client_for(settings)._auth.token()  # the token the requests above carried
    assert jwt.count(".") == 2
    error = bpy.context.window_manager.kling.error
    assert error == ""

    blend = tmp_path / "scan.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), compress=False)
    data = blend.read_bytes()
    if data[:2] == b"\x1f\x8b":  # compressed by preference: scan what it holds
        data = gzip.decompress(data)
    for secret in (settings.secret_key, connected.api_key, jwt):
        assert secret.encode() not in data, f"{secret[:6]}… found in the saved .blend"
    # The access key is an identifier, not a secret, but it is not stored either.
    assert settings.access_key.encode() not in data
    # The session itself is saved (what must survive a reopen), so the scan saw real content.
    assert movie_strip.kling.selection_json.encode()[:40] in data
    connected.api_key = ""
