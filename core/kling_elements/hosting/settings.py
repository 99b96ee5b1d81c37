"""The hosting choice as plain data: built from preferences, flags or the environment.

``HostingSettings`` is frozen and bpy-free, so the add-on builds it from its preferences on
Blender's main thread and hands it to a worker. Its repr never shows the secret access key
or the session token; ``problems()`` lists every setting that cannot work, naming the
setting and how to fix it, before anything is uploaded.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import ValidationError
from ..sigv4 import MAX_EXPIRES_S, redact
from .cache import MIN_URL_LIFE_LEFT_S
from .command import command_problems

__all__ = ["ADDRESSING", "ENV", "KINDS", "MIN_EXPIRES_S", "HostingSettings"]

KINDS = ("sandbox", "s3", "command", "url")
ADDRESSING = ("auto", "path", "virtual")
# A presigned URL must outlive the margin the cache keeps before reusing it, with room to spare.
MIN_EXPIRES_S = int(MIN_URL_LIFE_LEFT_S) + 300

# Environment variables, by field. AWS's own names first; the first one set wins.
ENV: dict[str, tuple[str, ...]] = {
    "kind": ("KLING_ELEMENTS_HOST_WITH",),
    "s3_endpoint": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    "s3_region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "s3_bucket": ("KLING_ELEMENTS_S3_BUCKET",),
    "s3_prefix": ("KLING_ELEMENTS_S3_PREFIX",),
    "s3_access_key_id": ("AWS_ACCESS_KEY_ID",),
    "s3_secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
    "s3_session_token": ("AWS_SESSION_TOKEN",),
    "s3_addressing": ("KLING_ELEMENTS_S3_ADDRESSING",),
    "s3_expires_s": ("KLING_ELEMENTS_S3_EXPIRES",),
    "command": ("KLING_ELEMENTS_HOST_COMMAND",),
    "command_timeout_s": ("KLING_ELEMENTS_HOST_COMMAND_TIMEOUT",),
    "url": ("KLING_ELEMENTS_HOST_URL",),
}
_SECRET_FIELDS = ("s3_secret_access_key", "s3_session_token")


def _where(field: str) -> str:
    names = ENV.get(field, ())
    env = f" or ${names[0]}" if names else ""
    return f"{field}{env}"


@dataclass(frozen=True)
class HostingSettings:
    """How local clips become URLs Kling can fetch; see ``docs/hosting.md``.

    ``kind`` is ``"sandbox"``, ``"s3"``, ``"command"`` or ``"url"``; the other fields
    belong to one kind each and are ignored by the rest.
    """

    kind: str
    s3_endpoint: str = ""
    s3_region: str = ""
    s3_bucket: str = ""
    s3_prefix: str = ""
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    s3_session_token: str = ""
    s3_addressing: str = "auto"
    s3_expires_s: int = 3600
    command: str = ""
    command_timeout_s: float = 600
    url: str = ""

    def __repr__(self) -> str:
        shown = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRET_FIELDS:
                shown.append(f"{f.name}={'<hidden>' if value else ''!r}")
            elif f.name == "url":
                shown.append(f"url={redact(value)!r}")
            else:
                shown.append(f"{f.name}={value!r}")
        return f"HostingSettings({', '.join(shown)})"

    @classmethod
    def from_env(cls, kind: str | None = None, environ: Mapping[str, str] | None = None,
                 **overrides: Any) -> HostingSettings:
        """Settings from ``environ`` (default ``os.environ``) with ``overrides`` on top.

        An override wins when it is not ``None`` and not ``""``; ``kind`` falls back to
        ``$KLING_ELEMENTS_HOST_WITH``, then ``"sandbox"``. The AWS variables are honoured as
        the AWS tools read them (``AWS_ENDPOINT_URL_S3`` before ``AWS_ENDPOINT_URL``,
        ``AWS_REGION`` before ``AWS_DEFAULT_REGION``). Numbers that do not parse are kept as
        text so :meth:`problems` can name them.
        """
        env = os.environ if environ is None else environ
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(f"unknown hosting setting(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for field, variables in ENV.items():
            found = next((env[v] for v in variables if env.get(v)), None)
            if found is not None:
                values[field] = found.strip()
        for field, value in overrides.items():
            if value is not None and value != "":
                values[field] = value
        if kind:
            values["kind"] = kind
        values.setdefault("kind", "sandbox")
        for field in ("s3_expires_s", "command_timeout_s"):
            number = _number(values.get(field))
            if isinstance(values.get(field), str) and math.isfinite(number):
                values[field] = int(number) if field == "s3_expires_s" and number.is_integer() \
                    else number
        return cls(**values)

    def problems(self) -> list[str]:
        """Every reason these settings cannot publish, each naming the setting and the fix."""
        if self.kind not in KINDS:
            return [f"hosting kind {self.kind!r} is not one of {', '.join(KINDS)}: choose one "
                    f"(--host-with, $KLING_ELEMENTS_HOST_WITH or the add-on's preferences)"]
        if self.kind == "s3":
            return self._s3_problems()
        if self.kind == "command":
            return command_problems(self.command, _number(self.command_timeout_s))
        if self.kind == "url":
            return _url_problems(self.url)
        return []

    def validate(self) -> None:
        """Raise ``ValidationError`` listing every problem (see :meth:`problems`)."""
        problems = self.problems()
        if problems:
            raise ValidationError("; ".join(problems))

    def _s3_problems(self) -> list[str]:
        problems = []
        bucket = self.s3_bucket.strip()
        if not bucket:
            problems.append(f"the S3 bucket is not set: set {_where('s3_bucket')}")
        elif "/" in bucket or any(c.isspace() for c in bucket):
            problems.append(f"S3 bucket {bucket!r} contains '/' or spaces: give only the "
                            "bucket's name (put folders in s3_prefix)")
        if {".", ".."} & set(self.s3_prefix.split("/")):
            problems.append(f"S3 prefix {self.s3_prefix!r} has '.' or '..' folders, which "
                            "HTTP libraries rewrite before sending: remove them")
        for field in ("s3_access_key_id", "s3_secret_access_key"):
            if not getattr(self, field):
                problems.append(f"the S3 {field.replace('s3_', '').replace('_', ' ')} is not "
                                f"set: set {_where(field)}")
        if self.s3_endpoint:
            parts = urlsplit(self.s3_endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                problems.append(f"S3 endpoint {self.s3_endpoint!r} is not an http(s) URL: give "
                                "the store's base URL, e.g. https://<account>.r2."
                                "cloudflarestorage.com or http://127.0.0.1:9000")
            elif parts.path.strip("/") or parts.query:
                problems.append(f"S3 endpoint {self.s3_endpoint!r} has a path or query: give "
                                "only scheme://host[:port]; the bucket goes in s3_bucket")
        if self.s3_addressing not in ADDRESSING:
            problems.append(f"S3 addressing {self.s3_addressing!r} is not one of "
                            f"{', '.join(ADDRESSING)}: use auto unless the store needs one")
        expires = _number(self.s3_expires_s)
        if not (math.isfinite(expires) and expires.is_integer()
                and MIN_EXPIRES_S <= expires <= MAX_EXPIRES_S):
            problems.append(f"S3 URL lifetime {self.s3_expires_s!r} must be a whole number "
                            f"of seconds from {MIN_EXPIRES_S} to {MAX_EXPIRES_S}: Kling needs "
                            "time to fetch the clip and SigV4 allows at most 7 days; set "
                            f"{_where('s3_expires_s')} (default 3600)")
        return problems


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def _url_problems(url: str) -> list[str]:
    if not url:
        return [f"the clip's URL is not set: set {_where('url')} to where the clip is online"]
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return [f"clip URL {redact(url)[:200]!r} is not an http(s) URL: give a URL Kling can "
                "fetch, such as https://example.com/clip.mp4"]
    return []
