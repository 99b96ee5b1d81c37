"""Lets plain Python import the add-on's bpy-free modules (pure/, work/, child/).

The package's ``__init__`` registers with Blender and imports ``bpy``; outside Blender the
package is stood up as a bare namespace so that its submodules import on their own.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

if importlib.util.find_spec("bpy") is None and "blender_addon" not in sys.modules:
    package = types.ModuleType("blender_addon")
    package.__path__ = [str(Path(__file__).resolve().parents[2] / "blender_addon")]
    sys.modules["blender_addon"] = package
