"""Properties of the Edit step and of each task, saved in the .blend with the strip.

A task record is written on the main thread *before* the create call is queued, with the
``external_task_id`` the call will carry: whatever happens next (Blender closed, the answer
lost), the task can be found again by that id, so it is never created twice and its result
is never lost. Times are whole Unix seconds (``IntProperty``; float properties are float32).
"""


import bpy

from kling_elements.validate import PROMPT_MAX_CHARS

__all__ = ["ACTIVE_STATUSES", "EDIT_MODE_ITEMS", "KlingEditSettings", "KlingTaskRecord",
           "classes"]

EDIT_MODE_ITEMS = (
    ("addition", "Add", "Add an element from a reference image"),
    ("swap", "Swap", "Replace the marked element with one from a reference image"),
    ("removal", "Remove", "Remove the marked element"),
)
MODE_LABELS = {key: label for key, label, _ in EDIT_MODE_ITEMS}

# "sending": the create call is queued or in flight; "submitted"/"processing": Kling works;
# "succeed": done on Kling's side (files may still be downloading); "failed": Kling's or the
# request's failure; "not_sent": the create call provably never reached Kling; "cancelled":
# Generate was cancelled before any create call could have created the task.
ACTIVE_STATUSES = ("sending", "submitted", "processing")


class KlingEditSettings(bpy.types.PropertyGroup):
    edit_mode: bpy.props.EnumProperty(name="Edit", items=EDIT_MODE_ITEMS, default="removal")
    image_1: bpy.props.PointerProperty(
        name="Image 1", type=bpy.types.Image,
        description="Reference image: <<<image_1>>> in the prompt")
    image_2: bpy.props.PointerProperty(
        name="Image 2", type=bpy.types.Image,
        description="Second reference image (Add only): <<<image_2>>> in the prompt")
    prompt: bpy.props.StringProperty(
        name="Prompt", description="What to do; refer to the clip as <<<video_1>>> and to the "
        f"images as <<<image_1>>>, <<<image_2>>> (at most {PROMPT_MAX_CHARS} characters)")
    negative_prompt: bpy.props.StringProperty(
        name="Negative",
        description=f"What to avoid (optional, at most {PROMPT_MAX_CHARS} characters)")
    language: bpy.props.EnumProperty(
        name="Template language", items=(("en", "EN", "English"), ("zh", "中文", "Chinese")),
        default="en")
    quality: bpy.props.EnumProperty(
        name="Quality", items=(("std", "Standard", "Cheaper"),
                               ("pro", "Pro", "Higher quality, costs more")), default="std")
    watermark: bpy.props.BoolProperty(
        name="Watermarked copy", description="Also download a watermarked copy of the result")
    mute_source: bpy.props.BoolProperty(
        name="Mute source on import", description="Mute this strip when a result is imported "
        "above it", default=False)


class KlingTaskRecord(bpy.types.PropertyGroup):
    external_task_id: bpy.props.StringProperty(name="External id")
    task_id: bpy.props.StringProperty(name="Task id")
    status: bpy.props.StringProperty(name="Status", default="sending")
    message: bpy.props.StringProperty(name="Message")
    edit_mode: bpy.props.StringProperty(name="Edit")
    prompt: bpy.props.StringProperty(name="Prompt")
    watermark: bpy.props.BoolProperty(name="Watermark")
    created: bpy.props.IntProperty(name="Created (Unix s)")
    finished: bpy.props.IntProperty(name="Finished (Unix s)")
    align_frame: bpy.props.IntProperty(
        name="Align frame", description="Timeline frame of the result's first frame")
    video_id: bpy.props.StringProperty(name="Result video id")
    video_url: bpy.props.StringProperty(name="Result URL")
    watermark_url: bpy.props.StringProperty(name="Watermarked URL")
    result_path: bpy.props.StringProperty(name="Result file")
    watermark_path: bpy.props.StringProperty(name="Watermarked file")
    imported_strip: bpy.props.StringProperty(name="Imported strip")
    cost: bpy.props.StringProperty(
        name="Cost", description="What Kling reported deducting for this task")


classes = (KlingEditSettings, KlingTaskRecord)
