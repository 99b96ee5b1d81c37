"""Render a movie's visible range to a Kling-compliant MP4, in a Blender process of its own.

Run by the add-on (``conform.render_command`` builds the command line), never imported by it:

    <blender> --background --factory-startup --python conform_render.py -- '<json>'
    <python with the bpy module> conform_render.py '<json>'

The JSON is ``conform.RenderArgs.to_json()``: the source file, the first and last file
frames that are visible, the number of frames to write, the target size and frame rate, a
temporary output name and the final one. Only ``bpy`` and the standard library are
imported: the add-on's package and wheels are not on ``sys.path`` in a
``--factory-startup`` process, so the add-on's ``compat`` (every Blender version
difference) and ``protocol`` are loaded from their files (``load_sibling``).

Timing: output frame ``k`` shows file frame ``first + round_half_up(k * movie_fps / fps)``,
clamped to ``last``: the nearest file frame to the time ``k / fps`` after the first visible
one. Blender computes exactly that for a strip whose "Adjust Playback Rate" flag is set,
which only the add-movie operator can set (RNA does not expose it), so that operator is run
in an overridden Sequencer context when the rates differ; at equal rates a plain
``new_movie`` strip is the same thing.

Progress and the outcome are reported as ``protocol`` says; on failure the temporary file
is removed and the exit status is 1. The process leaves through ``os._exit`` (the bpy 4.2
module can crash in its own teardown, which would turn a finished render into a failure).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

_ADDON_DIR = Path(__file__).resolve().parent.parent


def load_sibling(relative: str) -> ModuleType:
    """The add-on's module at ``relative`` (a path under the add-on folder), loaded from its
    file under a private name: it must import only the standard library and ``bpy``."""
    name = "_kling_child_" + relative.removesuffix(".py").replace("/", "_")
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _ADDON_DIR / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_protocol = load_sibling("child/protocol.py")
PROGRESS, DONE, ERROR = _protocol.PROGRESS, _protocol.DONE, _protocol.ERROR

_REQUIRED = ("source", "output", "tmp_output", "width", "height", "fps", "source_fps",
             "first_frame", "last_frame", "frame_count")


def _emit(stream: Any, line: str) -> None:
    stream.write(line + "\n")
    stream.flush()


def parse_argv(argv: list[str]) -> dict[str, Any]:
    """The JSON object after ``--`` (Blender's command line) or first (plain Python)."""
    rest = argv[argv.index("--") + 1:] if "--" in argv else argv[1:]
    if len(rest) != 1:
        raise ValueError(f"expected one JSON argument, got {len(rest)}")
    args = json.loads(rest[0])
    missing = [key for key in _REQUIRED if key not in args]
    if missing:
        raise ValueError(f"render arguments lack {', '.join(missing)}")
    if not str(args["tmp_output"]).lower().endswith(".mp4"):
        # Blender appends a frame range to a movie name without its extension.
        raise ValueError(f"tmp_output {args['tmp_output']!r} must end in .mp4")
    return args


def _file_frames(bpy: Any, path: str) -> int:
    """The movie's frame count as Blender's decoder sees it (independent of any strip)."""
    clip = bpy.data.movieclips.load(path, check_existing=False)
    try:
        return int(clip.frame_duration)
    finally:
        bpy.data.movieclips.remove(clip)


def _add_retimed_strip(bpy: Any, scene: Any, path: str) -> Any:
    """A movie strip played at its own frame rate (Blender's "Adjust Playback Rate")."""
    compat = load_sibling("compat.py")
    window = bpy.context.window_manager.windows[0]
    compat.set_sequencer_scene(window, scene)
    area = window.screen.areas[0]
    area.type = "SEQUENCE_EDITOR"
    region = next(r for r in area.regions if r.type == "WINDOW")
    operator = bpy.ops.sequencer.movie_strip_add
    options = compat.movie_strip_add_options(
        operator, filepath=path, frame_start=1, channel=1, sound=False,
        adjust_playback_rate=True, use_framerate=False, set_view_transform=False,
        fit_method="ORIGINAL")
    before = {s.name for s in compat.top_level(scene.sequence_editor)}
    with bpy.context.temp_override(window=window, area=area, region=region, scene=scene):
        result = operator(**options)
    added = [s for s in compat.top_level(scene.sequence_editor)
             if s.name not in before and s.type == "MOVIE"]
    if result != {"FINISHED"} or len(added) != 1:
        raise RuntimeError(f"adding the movie failed ({result}, {len(added)} movie strips)")
    return added[0]


def _configure(scene: Any, args: dict[str, Any]) -> None:
    compat = load_sibling("compat.py")
    render = scene.render
    render.resolution_x, render.resolution_y = int(args["width"]), int(args["height"])
    render.resolution_percentage = 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    render.fps, render.fps_base = int(args["fps"]), 1.0
    render.use_sequencer = True
    render.dither_intensity = 0.0  # dither noise would differ from the source pixels
    scene.frame_start, scene.frame_end = 1, int(args["frame_count"])
    # Pass the movie's colours through untouched (the default AgX/Filmic would tone-map).
    scene.display_settings.display_device = "sRGB"
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0
    compat.set_movie_output(render.image_settings, "FFMPEG")
    ffmpeg = render.ffmpeg
    ffmpeg.format = "MPEG4"
    ffmpeg.codec = "H264"
    ffmpeg.constant_rate_factor = args.get("quality", "HIGH")
    ffmpeg.ffmpeg_preset = args.get("preset", "REALTIME")
    ffmpeg.audio_codec = "NONE"
    render.use_file_extension = True
    render.filepath = str(args["tmp_output"])


def _place(bpy: Any, scene: Any, args: dict[str, Any]) -> Any:
    """The source strip, showing file frames first..last from scene frame 1, filling the frame."""
    compat = load_sibling("compat.py")
    path = str(args["source"])
    first, last = int(args["first_frame"]), int(args["last_frame"])
    total = _file_frames(bpy, path)
    if not 0 <= first <= last < total:
        raise ValueError(f"frames {first}..{last} are outside the movie's 0..{total - 1}: "
                         "the file changed since the plan was made; conform again")
    editor = scene.sequence_editor_create()
    if abs(float(args["source_fps"]) - float(args["fps"])) > 1e-6:
        strip = _add_retimed_strip(bpy, scene, path)
    else:
        strip = compat.new_movie(editor, "source", path, 1, 1)
    element = strip.elements[0]
    width, height = int(element.orig_width), int(element.orig_height)
    if width <= 0 or height <= 0:
        raise RuntimeError(f"Blender could not read {path!r} as a movie")
    compat.set_timing(strip, "content_trim_start", first)
    compat.set_timing(strip, "content_trim_end", total - 1 - last)
    compat.set_timing(strip, "content_start", 1)
    compat.set_timing(strip, "left_handle", 1)
    compat.set_timing(strip, "right_handle", 1 + int(args["frame_count"]))
    transform = strip.transform
    transform.offset_x = transform.offset_y = 0.0
    transform.scale_x = int(args["width"]) / width
    transform.scale_y = int(args["height"]) / height
    return strip


def render(args: dict[str, Any]) -> str:
    """Render the planned frames to ``tmp_output``, then move it to ``output``; return it."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    _configure(scene, args)
    _place(bpy, scene, args)
    total = int(args["frame_count"])

    def written(scene_: Any, *_: Any) -> None:
        _emit(sys.stdout, f"{PROGRESS} {scene_.frame_current - scene_.frame_start + 1} {total}")

    bpy.app.handlers.render_write.append(written)
    tmp, output = str(args["tmp_output"]), str(args["output"])
    os.makedirs(os.path.dirname(os.path.abspath(tmp)), exist_ok=True)
    bpy.ops.render.render(animation=True, scene=scene.name)
    if not os.path.isfile(tmp) or os.path.getsize(tmp) == 0:
        raise RuntimeError(f"Blender wrote no movie at {tmp!r}")
    os.replace(tmp, output)
    return output


def main(argv: list[str]) -> int:
    tmp = ""
    try:
        args = parse_argv(argv)
        tmp = str(args["tmp_output"])
        output = render(args)
    except BaseException as exc:
        traceback.print_exc()
        _emit(sys.stderr, f"{ERROR} {exc}".replace("\n", " "))
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return 1
    _emit(sys.stdout, f"{DONE} {output}")
    return 0


if __name__ == "__main__":
    status = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
