"""Add-on preferences: region, keys, and how the client is built from them.

Keys live in Blender's user preferences (never in a .blend) as PASSWORD fields; the
``KLINGAI_*`` environment variables win over them. ``client_settings`` reads everything on
the main thread into a plain tuple, so the worker thread never touches ``bpy``.
"""


import os

import bpy

from kling_elements import REGIONS
from kling_elements.credentials import Credentials, resolve_credentials
from kling_elements.hosting import HostingSettings

from .. import compat
from ..pure.settings import ClientSettings

__all__ = ["ClientSettings", "KlingPreferences", "base_url", "client_settings", "get_prefs",
           "hosting_settings", "url_cache_dir"]

HOST_CHOICES = (
    ("sandbox", "Local sandbox", "Upload to the local sandbox (only with a sandbox base URL)"),
    ("s3", "S3-compatible store", "Upload to a private bucket (AWS S3, R2, MinIO, B2, OSS...) "
     "and give Kling a presigned link that expires"),
    ("command", "Command", "Run your own upload command (rclone, scp...); its last output line "
     "is the public URL"),
    ("url", "URL per clip", "You publish clips yourself and paste each clip's URL in Source"),
)

SANDBOX_URL = "http://127.0.0.1:8765"
# The add-on's own package ("blender_addon", or "bl_ext.<repo>.<id>" as an extension): what
# Blender keys its preferences and user folder by.
ADDON_PACKAGE = __package__.rpartition(".")[0]


class KlingPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

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

    host_with: bpy.props.EnumProperty(name="Publish clips with", items=HOST_CHOICES,
                                      default="sandbox")
    s3_endpoint: bpy.props.StringProperty(
        name="Endpoint", description="Empty for AWS S3; e.g. https://<account>.r2."
        "cloudflarestorage.com or http://127.0.0.1:9000 for MinIO")
    s3_region: bpy.props.StringProperty(name="Region", description="e.g. us-east-1; 'auto' "
                                        "for R2")
    s3_bucket: bpy.props.StringProperty(name="Bucket")
    s3_prefix: bpy.props.StringProperty(name="Key prefix", default="kling-elements/")
    s3_access_key_id: bpy.props.StringProperty(name="Access key id", subtype="PASSWORD")
    s3_secret_access_key: bpy.props.StringProperty(name="Secret access key",
                                                   subtype="PASSWORD")
    s3_addressing: bpy.props.EnumProperty(
        name="Addressing", default="auto",
        items=(("auto", "Auto", "Virtual-host style for AWS, path style for custom endpoints"),
               ("path", "Path style", "https://endpoint/bucket/key"),
               ("virtual", "Virtual host", "https://bucket.endpoint/key")))
    s3_expires_s: bpy.props.IntProperty(
        name="Link lifetime (s)", default=3600, min=900, max=7 * 24 * 3600,
        description="How long the presigned link Kling downloads from stays valid")
    host_command: bpy.props.StringProperty(
        name="Command", description="Run without a shell; {path} and {name} are replaced; the "
        "last line it prints must be the public URL, e.g. "
        "rclone copyto {path} web:clips/{name} && ... (use a script for pipelines)")
    host_command_timeout_s: bpy.props.IntProperty(name="Time limit (s)", default=600, min=10)

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
        self._draw_hosting(layout.box())

    def _draw_hosting(self, box) -> None:
        box.label(text="Kling downloads your clip from a URL: how is a local clip published?")
        box.prop(self, "host_with")
        if self.host_with == "s3":
            for name in ("s3_endpoint", "s3_region", "s3_bucket", "s3_prefix",
                         "s3_access_key_id", "s3_secret_access_key", "s3_addressing",
                         "s3_expires_s"):
                box.prop(self, name)
            if os.environ.get("AWS_ACCESS_KEY_ID"):
                box.label(text="AWS_* environment variables fill the fields left empty",
                          icon="INFO")
        elif self.host_with == "command":
            box.prop(self, "host_command")
            box.prop(self, "host_command_timeout_s")
        elif self.host_with == "url":
            box.label(text="Paste each clip's URL in the sidebar's Source step", icon="INFO")
        for problem in hosting_settings(self).problems() if self.host_with != "url" else ():
            row = box.row()
            row.alert = True
            row.label(text=problem, icon="ERROR")


def get_prefs(context: bpy.types.Context | None = None) -> KlingPreferences:
    context = context or bpy.context
    prefs = context.preferences.addons[ADDON_PACKAGE].preferences
    assert isinstance(prefs, KlingPreferences)
    return prefs


def base_url(context: bpy.types.Context | None = None,
             prefs: KlingPreferences | None = None) -> str:
    """Kling's base URL (``KLINGAI_BASE_URL`` first), without reading the keys: ``poll()``
    of every operator button asks for it on every redraw."""
    prefs = prefs or get_prefs(context)
    return os.environ.get("KLINGAI_BASE_URL") or (
        prefs.custom_url if prefs.region == "custom" else REGIONS[prefs.region])


def client_settings(context: bpy.types.Context | None = None) -> ClientSettings:
    """The keys to use: the core's precedence (``KLINGAI_*`` first, then these prefs)."""
    prefs = get_prefs(context)
    configured = (Credentials(api_key=prefs.api_key) if prefs.auth_mode == "api_key"
                  else Credentials(access_key=prefs.access_key, secret_key=prefs.secret_key))
    chosen = resolve_credentials(os.environ, configured)
    return ClientSettings(base_url(prefs=prefs), chosen.access_key, chosen.secret_key,
                          chosen.api_key)


def hosting_settings(prefs: KlingPreferences | None = None) -> HostingSettings:
    """The publishing choice as plain data for the worker (AWS_* env vars fill blanks)."""
    prefs = prefs or get_prefs()
    if prefs.host_with in ("sandbox", "url"):
        return HostingSettings(kind=prefs.host_with)
    if prefs.host_with == "command":
        return HostingSettings(kind="command", command=prefs.host_command,
                               command_timeout_s=float(prefs.host_command_timeout_s))
    fields = {name: getattr(prefs, name) for name in (
        "s3_endpoint", "s3_region", "s3_bucket", "s3_prefix", "s3_access_key_id",
        "s3_secret_access_key", "s3_addressing")}
    fields = {name: value for name, value in fields.items() if value}
    return HostingSettings.from_env("s3", s3_expires_s=int(prefs.s3_expires_s), **fields)


def url_cache_dir() -> str:
    """Where published URLs are remembered per clip content (never the store's secrets)."""
    return (compat.extension_user_dir(ADDON_PACKAGE, "hosting")
            or bpy.utils.user_resource("CONFIG", path="kling-elements", create=True))
