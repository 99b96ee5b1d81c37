"""Conform: turn (a range of) a real clip into one Kling accepts, and say what it shows.

``plan`` decides what to render (host-independent, no I/O): the add-on renders a plan with
Blender, the CLI and batch with PyAV (``render``, the ``video`` extra, imported only when
used). The record beside every conformed clip says which source frame each of its frames
shows.
"""

from __future__ import annotations

from .plan import (
    DEFAULT_PRESET,
    DEFAULT_QUALITY,
    DURATION_CHOICES,
    RECORD_SUFFIX,
    RECORD_VERSION,
    ConformCancelled,
    ConformError,
    ConformPlan,
    SourceClip,
    conform_size,
    duration_options,
    nearest_fps,
    needs_conform,
    plan_conform,
    read_record,
    record_path,
    write_record,
)

__all__ = [
    "DEFAULT_PRESET",
    "DEFAULT_QUALITY",
    "DURATION_CHOICES",
    "RECORD_SUFFIX",
    "RECORD_VERSION",
    "ConformCancelled",
    "ConformError",
    "ConformPlan",
    "SourceClip",
    "conform_size",
    "duration_options",
    "nearest_fps",
    "needs_conform",
    "plan_conform",
    "read_record",
    "record_path",
    "write_record",
]
