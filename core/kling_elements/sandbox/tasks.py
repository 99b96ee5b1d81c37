"""Edit tasks: the create endpoint's checks, the clock-derived status, the JSON shapes.

A task's visible status is a pure function of the sandbox clock and the render's outcome
(:func:`status_at`), so advancing the clock moves tasks along deterministically: ``submitted``
for the first 10 % of ``task_seconds``, then ``processing`` until ``task_seconds`` have passed
*and* the render finished, then ``succeed`` or ``failed``. Every check of :func:`create_task`
happens before anything is stored, so a refused create leaves no trace.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import os
from decimal import Decimal

import numpy as np
from PIL import Image

from .. import validate
from ..errors import ValidationError
from .billing import deduction_fields, task_units, units_for
from .config import ApiError, SandboxConfig
from .fetch import download, loopback_url
from .state import State, Task

__all__ = [
    "DEFAULT_DURATION", "FAIL_MARKER", "FAIL_MESSAGE", "MODEL_NAMES", "callback_payload",
    "create_task", "status_at", "task_object",
]

MODEL_NAMES = validate.MODEL_NAMES
# What Kling does when a create body has no ``duration``.
DEFAULT_DURATION = "5"
FAIL_MARKER = "[[fail]]"
FAIL_MESSAGE = "content safety policy: the sandbox refuses prompts containing [[fail]]"
SUBMITTED_FRACTION = 0.1
ACTIVE = ("submitted", "processing")


def status_at(task: Task, now: float, task_seconds: float) -> tuple[str, float]:
    """``(task_status, updated_at)`` of ``task`` at sandbox time ``now`` (seconds)."""
    processing_at = task.created_at + SUBMITTED_FRACTION * task_seconds
    if now < processing_at:
        return "submitted", task.created_at
    finished = task.render_finished_at
    done_at = task.created_at + task_seconds
    if finished is None or now < done_at:
        return "processing", processing_at
    return ("failed" if task.render_error else "succeed"), max(done_at, finished)


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _videos(state: State, task: Task, base_url: str | None, full: bool) -> list[dict]:
    result = task.result
    if result is None:
        return []
    item = {"id": result.id, "url": state.file_url(result.name, base_url),
            "duration": f"{result.duration_s:.1f}"}
    if full:
        item["session_id"] = result.session_id
        item["watermark_url"] = (
            state.file_url(result.watermark_name, base_url) if result.watermark_name else ""
        )
    return [item]


def task_object(
    state: State, task: Task, now: float, task_seconds: float, base_url: str | None = None
) -> dict:
    """The task as GET/list return it, with its deduction (none once it failed)."""
    status, updated = status_at(task, now, task_seconds)
    units = task_units(task) if status != "failed" else Decimal(0)
    return {
        "task_id": task.id,
        "task_status": status,
        "task_status_msg": (task.render_error or "") if status == "failed" else "",
        "task_info": {"external_task_id": task.external_task_id},
        "task_result": {"videos": _videos(state, task, base_url, True) if status == "succeed"
                        else []},
        "watermark_info": {"enabled": task.watermark},
        "created_at": _ms(task.created_at),
        "updated_at": _ms(updated),
        **deduction_fields(units),
    }


def callback_payload(state: State, task: Task, status: str, updated_at: float) -> dict:
    """The documented callback body for ``task`` having reached ``status``."""
    return {
        "task_id": task.id,
        "task_status": status,
        "task_status_msg": (task.render_error or "") if status == "failed" else "",
        "task_info": {"external_task_id": task.external_task_id},
        "created_at": _ms(task.created_at),
        "updated_at": _ms(updated_at),
        "task_result": {"videos": _videos(state, task, None, False) if status == "succeed"
                        else []},
    }


# ---------------------------------------------------------------- create


def _invalid(exc: ValidationError) -> ApiError:
    return ApiError(1201, str(exc))


def _image_bytes(state: State, field: str, value: str) -> bytes:
    if value[:5].lower() == "data:":
        raise ApiError(1201, f"{field} starts with a data: prefix: send the raw base64 only, "
                             "without 'data:image/...;base64,'")
    limit = validate.IMAGE_MAX_BYTES
    if value.lower().startswith(("http://", "https://")):
        url = loopback_url(field, value)
        incoming = state.data_dir / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        path = incoming / f"{state.new_session_id()}.img"
        download(url, path, field=field, max_bytes=limit)
        try:
            return path.read_bytes()
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
    compact = "".join(value.split())
    if len(compact) > (limit + 2) // 3 * 4:
        raise ApiError(1201, f"{field} is over the {limit // 2**20} MB limit: shrink it")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(1201, f"{field} is neither an http(s) URL nor valid base64") from None


def _image(state: State, index: int, item: object) -> np.ndarray:
    """One reference image, checked against every documented rule, as RGB pixels."""
    field = f"image_list[{index}].image"
    value = item.get("image") if isinstance(item, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise ApiError(1201, f'image_list[{index}] must be {{"image": "<URL or raw base64>"}}')
    data = _image_bytes(state, field, value.strip())
    if len(data) > validate.IMAGE_MAX_BYTES:
        raise ApiError(1201, f"{field} is {len(data)} bytes, over the "
                             f"{validate.IMAGE_MAX_BYTES // 2**20} MB limit: shrink it")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception:
        raise ApiError(1201, f"{field} is not a readable image: send a JPEG or PNG") from None
    if image.format not in validate.IMAGE_FORMATS:
        raise ApiError(1201, f"{field} is {image.format}: only JPEG and PNG are accepted")
    try:
        validate.image_geometry(*image.size, label=field)
    except ValidationError as exc:
        raise _invalid(exc) from None
    return np.asarray(image.convert("RGB"))


def _string(body: dict, name: str, default: str | None = None) -> str | None:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ApiError(1201, f"{name} must be a string, got {type(value).__name__}")
    return value


def _options(body: dict) -> dict:
    """The scalar fields of a create body, checked (no I/O, no session needed)."""
    model = _string(body, "model_name") or MODEL_NAMES[0]
    if model not in MODEL_NAMES:
        raise ApiError(1201, f"model_name {model!r} is not supported by the sandbox "
                             f"(use {', '.join(MODEL_NAMES)})")
    edit_mode = _string(body, "edit_mode")
    try:
        validate.edit_mode(edit_mode)
    except ValidationError as exc:
        raise _invalid(exc) from None
    images = body.get("image_list") or []
    if not isinstance(images, list):
        raise ApiError(1201, 'image_list must be a list of {"image": str}')
    try:
        validate.image_count(edit_mode, len(images))
        prompt = validate.prompt(body.get("prompt"), len(images), placeholders=False)
        negative = validate.negative_prompt(_string(body, "negative_prompt"))
        mode = validate.mode(_string(body, "mode", "std"))
    except ValidationError as exc:
        raise _invalid(exc) from None
    watermark = body.get("watermark_info")
    if watermark is not None and (
        not isinstance(watermark, dict) or not isinstance(watermark.get("enabled", False), bool)
    ):
        raise ApiError(1201, 'watermark_info must be {"enabled": true|false}')
    callback = _string(body, "callback_url") or None
    if callback is not None:
        loopback_url("callback_url", callback)
    return {
        "model_name": model, "edit_mode": edit_mode, "image_list": images, "prompt": prompt,
        "negative_prompt": negative, "mode": mode, "callback_url": callback,
        "watermark": bool((watermark or {}).get("enabled", False)),
        "external_task_id": _string(body, "external_task_id", ""),
    }


def _duration(body: dict, session_s: float) -> str:
    """The task's duration: as sent, else Kling's default "5" (which cuts a longer input).

    "10" needs a 7-10 s input (the docs pair "10" with such inputs; there is nothing to make
    10 s from); "5" on a 7-10 s input is taken, and its result is the input's first 5 s.
    """
    value = _string(body, "duration")
    if value is None:
        return DEFAULT_DURATION
    if value not in validate.DURATION_CHOICES:
        raise ApiError(1201, f"duration {value!r} must be '5' (input 2-5 s) or '10' "
                             "(input 7-10 s)")
    if value == "10" and validate.duration_for(session_s) == "5":
        raise ApiError(1201, f"duration '10' needs a 7-10 s input; the session's video lasts "
                             f"{session_s:.2f} s: use '5'")
    return value


def create_task(state: State, config: SandboxConfig, owner: str, body: dict) -> Task:
    """Check a create body and register the task (queued for rendering); 12xx/1303 else.

    ``owner`` is the caller's account: its tasks share one concurrency limit and one space
    of ``external_task_id`` values, whichever key created them.
    """
    session = state.session(body.get("session_id"))
    options = _options(body)
    duration = _duration(body, session.duration_s)
    with session.lock:
        key_masks, version = dict(session.masks), session.version
    if options["edit_mode"] in ("swap", "removal") and not key_masks:
        raise ApiError(1201, f"{options['edit_mode']} needs a marked selection: call "
                             "add-selection on the session first")
    images = [_image(state, i, item) for i, item in enumerate(options.pop("image_list"))]
    external = options["external_task_id"]
    with state.lock:
        now = state.clock.now()
        if external:
            for other in state.all_tasks():
                if other.owner == owner and other.external_task_id == external:
                    raise ApiError(
                        1201, f"external_task_id {external!r} is already used by task "
                              f"{other.id}: query it instead of creating it again")
        running = sum(
            1 for t in state.tasks_of(owner) if status_at(t, now, config.task_seconds)[0] in ACTIVE
        )
        if running >= config.max_concurrent_tasks:
            raise ApiError(1303, f"{running} tasks are already running, the limit is "
                                 f"{config.max_concurrent_tasks}: wait for one to finish")
        if state.billing is not None:
            state.billing.check_affordable(
                units_for(options["mode"], duration), state.all_tasks(),
                lambda t: status_at(t, now, config.task_seconds)[0], now)
        task = Task(
            id=state.new_numeric_id(), owner=owner, session_id=session.id, duration=duration,
            created_at=now, video_path=session.video_path, images=images, key_masks=key_masks,
            selection_version=version, **options,
        )
        if FAIL_MARKER in task.prompt:
            task.render_error, task.render_finished_at = FAIL_MESSAGE, now
            task.images, task.key_masks = [], {}
        state.add_task(task)
    return task
