"""Add-on preferences: region, keys, and how the client is built from them.

Keys live in Blender's user preferences (never in a .blend) as PASSWORD fields; the
``KLINGAI_*`` environment variables win over them. ``client_settings`` reads everything on
the main thread into a plain tuple, so the worker thread never touches ``bpy``.
"""


import os

import bpy

from kling_elements import REGIONS

from .settings import ClientSettings

__all__ = ["ClientSettings", "KlingPreferences", "client_settings", "get_prefs"]

SANDBOX_URL = "http://127.0.0.1:8765"


class KlingPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    region: bpy.props.EnumProperty(
        name="Region",
        items=(
            ("global", "Global", REGIONS["global"]),
            ("china", "Mainland China", REGIONS["china"]),
            ("custom", "Custom URL", "A local sandbox or another endpoint"),
        ),
        default="global",
    )
    custom_url: bpy.props.StringProperty(name="Base URL", default=SANDBOX_URL)
    auth_mode: bpy.props.EnumProperty(
        name="Credentials",
        items=(("keys", "Access + Secret Key", ""), ("api_key", "API Key", "")),
        default="keys",
    )
    access_key: bpy.props.StringProperty(name="Access Key", subtype="PASSWORD")
    secret_key: bpy.props.StringProperty(name="Secret Key", subtype="PASSWORD")
    api_key: bpy.props.StringProperty(name="API Key", subtype="PASSWORD")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "region")
        if self.region == "custom":
            layout.prop(self, "custom_url")
        layout.prop(self, "auth_mode", expand=True)
        if self.auth_mode == "keys":
            layout.prop(self, "access_key")
            layout.prop(self, "secret_key")
        else:
            layout.prop(self, "api_key")
        if any(os.environ.get(v) for v in ("KLINGAI_API_KEY", "KLINGAI_ACCESS_KEY")):
            layout.label(text="KLINGAI_* environment variables override these keys", icon="INFO")
        layout.operator("kling.test_connection")


def get_prefs(context: bpy.types.Context | None = None) -> KlingPreferences:
    context = context or bpy.context
    prefs = context.preferences.addons[__package__].preferences
    assert isinstance(prefs, KlingPreferences)
    return prefs


def client_settings(context: bpy.types.Context | None = None) -> ClientSettings:
    prefs = get_prefs(context)
    env = os.environ
    base = env.get("KLINGAI_BASE_URL") or (
        prefs.custom_url if prefs.region == "custom" else REGIONS[prefs.region]
    )
    if env.get("KLINGAI_API_KEY"):
        return ClientSettings(base, api_key=env["KLINGAI_API_KEY"])
    if env.get("KLINGAI_ACCESS_KEY") and env.get("KLINGAI_SECRET_KEY"):
        return ClientSettings(base, env["KLINGAI_ACCESS_KEY"], env["KLINGAI_SECRET_KEY"])
    if prefs.auth_mode == "api_key":
        return ClientSettings(base, api_key=prefs.api_key)
    return ClientSettings(base, prefs.access_key, prefs.secret_key)
