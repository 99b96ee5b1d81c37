"""The batch manifest: JSON Lines parsing, whole-manifest validation, and sharding.

One job per line; paths are relative to the manifest's folder. The first line may instead
hold settings for the whole batch, ``{"batch": {"budget": 50}}`` (today only the budget, in
units; the command line's ``--budget`` wins over it). Validation reports every
violation of every line at once (with its line number) and reuses the checks the client
applies before spending (``validate``, ``media``), so no limit is written twice. Sharding
is a pure function of a job's name: ``--shard I/N`` on N machines covers each job exactly
once, and adding or removing jobs never moves the others.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .. import validate
from ..conform.cache import ConformTarget
from ..errors import ValidationError
from ..selection import SelectionState
from ..workflow import EditJob

__all__ = [
    "BatchJob",
    "Manifest",
    "ManifestError",
    "Problem",
    "from_records",
    "in_shard",
    "load",
    "parse_shard",
]

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,119}")
FIELDS = ("name", "video", "select", "edit_mode", "prompt", "images", "negative_prompt",
          "mode", "duration", "watermark", "model_name", "conform", "range", "match_source",
          "meta")
META_MAX_BYTES = 4096
"""``meta``: a free-form JSON object carried unchanged into the job's report entry (e.g. the
timeline strip a shot came from), kept small because every report rewrite carries it."""
SETTINGS_KEY = "batch"
SETTINGS = ("budget",)
_URL_PREFIXES = ("http://", "https://")


@dataclass(frozen=True)
class Problem:
    """One violation: the manifest line (1-based), the job's name if known, what to fix."""

    line: int
    name: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f" ({self.name})" if self.name else "")
        return f"{where}: {self.message}"


class ManifestError(ValidationError):
    """The manifest has violations; ``problems`` lists every one, in line order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = len({p.line for p in problems})
        super().__init__(
            f"{len(problems)} problem(s) on {lines} line(s) of the manifest; nothing was "
            "sent:\n" + "\n".join(f"  {p}" for p in problems)
        )


@dataclass(frozen=True)
class BatchJob:
    """One valid manifest line; ``spec`` is its edit with paths resolved against the
    manifest's folder (and no output yet: that depends on the run's output folder).
    ``conform`` is the planned conform of a ``"conform": true`` line (its clip is cached
    under the run's folder by content, see ``conform.cache``)."""

    line: int
    name: str
    spec: EditJob
    conform: ConformTarget | None = None
    match_source: bool = False
    meta: dict[str, Any] | None = field(default=None, compare=False)
    """The line's ``meta`` object, for its report entry only: not part of the job's
    identity (nor of its hash)."""
    expected_duration: str | None = field(default=None, compare=False)
    """The task ``duration`` the job will send as far as the manifest can tell: the line's
    own, else the one its local clip's length calls for (``None``: known only once its
    session says). For the budget's estimate before anything is sent; the body itself is
    still built from the session."""

    def matched_path(self, out_dir: str | os.PathLike) -> Path:
        """``<out_dir>/<name>.source.mp4``: the result in the plate's rate, size and span."""
        return Path(out_dir) / f"{self.name}.source.mp4"

    def edit_job(self, out_dir: str | os.PathLike) -> EditJob:
        """The ``workflow`` job writing ``<out_dir>/<name>.mp4`` (from the conformed clip)."""
        job = replace(self.spec, output=str(Path(out_dir) / f"{self.name}.mp4"))
        if self.conform is not None:
            job = replace(job, video_path=str(self.conform.path(out_dir)),
                          video_digest=f"conform:{self.conform.key}")
        return job


@dataclass
class Manifest:
    """The parsed manifest: valid jobs, every problem, and each line's name (or ``None``);
    ``budget`` from its settings line (``None``: none given)."""

    path: Path | None
    jobs: list[BatchJob] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    entries: list[tuple[int, str | None]] = field(default_factory=list)
    budget: Decimal | None = None

    @property
    def invalid_lines(self) -> list[tuple[int, str | None]]:
        bad = {p.line for p in self.problems}
        return [(line, name) for line, name in self.entries if line in bad]

    def raise_for_problems(self) -> None:
        if self.problems:
            raise ManifestError(self.problems)


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` with ``1 <= I <= N`` as ``(I, N)``; a ValidationError that shows the form."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise ValidationError(
            f"shard {text!r} must be I/N with 1 <= I <= N, e.g. 2/3 for the second of 3 shards"
        )
    return int(match.group(1)), int(match.group(2))


def in_shard(name: str | None, shard: tuple[int, int] | None) -> bool:
    """Whether the job ``name`` belongs to ``shard`` (``None``: no sharding, all jobs).

    The choice hashes the name (SHA-256), so it is the same on every machine, Python version
    and manifest order. Lines without a usable name belong to shard 1, so exactly one shard
    reports them.
    """
    if shard is None:
        return True
    index, count = shard
    if not name:
        return index == 1
    bucket = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") % count
    return bucket == index - 1


class _Checker:
    """Collects every violation of one line instead of stopping at the first."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def run(self, check: Callable[[], Any], prefix: str = "") -> Any:
        try:
            return check()
        except ValidationError as exc:
            self.messages.append(prefix + str(exc))
            return None

    def add(self, message: str) -> None:
        self.messages.append(message)


class _Probes:
    """Local file checks shared by every line (a plate used by 20 shots is probed once)."""

    def __init__(self) -> None:
        self.videos: dict[Path, tuple[validate.VideoInfo | None, list[str]]] = {}
        self.images: dict[Path, str | None] = {}
        self.conforms: dict[tuple[Path, str, str], tuple[ConformTarget | None, list[str]]] = {}

    def video(self, path: Path) -> tuple[validate.VideoInfo | None, list[str]]:
        if path not in self.videos:
            try:
                from ..media import probe
                info = probe(path)
                self.videos[path] = (info, validate.video_problems(info))
            except ImportError:  # without PyAV only existence can be checked
                ok = path.is_file()
                self.videos[path] = (None, [] if ok else [f"video {str(path)!r} does not "
                                                          "exist or is not a file"])
            except ValidationError as exc:
                self.videos[path] = (None, [str(exc)])
        return self.videos[path]

    def conform(self, path: Path, span: Any, duration: Any
                ) -> tuple[ConformTarget | None, list[str]]:
        key = (path, json.dumps(span), str(duration))
        if key not in self.conforms:
            from ..conform.cache import conform_target
            self.conforms[key] = conform_target(path, span, duration)
        return self.conforms[key]

    def image(self, path: Path, label: str) -> str | None:
        if path not in self.images:
            from ..media import prepare_image
            try:
                prepare_image(path, label=label)
                self.images[path] = None
            except ValidationError as exc:
                self.images[path] = str(exc)
        return self.images[path]


def _resolve(base: Path, value: str) -> str:
    return str((base / value).resolve())


def _video(raw: object, base: Path, probes: _Probes, check: _Checker,
           local_ok: bool, conform: bool = False) -> tuple[dict[str, str], float | None]:
    """The source fields of an ``EditJob`` and, for a local clip, its duration.

    A clip to be conformed is only located here (``_conform`` checks it)."""
    if isinstance(raw, dict):
        if set(raw) != {"video_id"} or not isinstance(raw["video_id"], str) or not raw[
                "video_id"].strip():
            check.add('video must be a path, an http(s) URL or {"video_id": "<id>"}')
            return {}, None
        return {"video_id": raw["video_id"]}, None
    if not isinstance(raw, str) or not raw.strip():
        check.add('video is required: a path, an http(s) URL or {"video_id": "<id>"}')
        return {}, None
    if raw.lower().startswith(_URL_PREFIXES):
        return {"video_url": raw}, None
    if not local_ok:
        check.add(f"video {raw!r} is a local file but no hosting choice was given to "
                  "publish it: pass a host, or give an http(s) URL")
    path = Path(_resolve(base, raw))
    if conform:
        return {"video_path": str(path)}, None
    info, problems = probes.video(path)
    for problem in problems:
        check.add(problem)
    if info is not None and problems:
        check.add('or add "conform": true to conform the clip first (see docs/batch.md)')
    return {"video_path": str(path)}, info.duration_s if info and not problems else None


def _conform(record: Mapping, source: dict[str, str], probes: _Probes,
             check: _Checker) -> tuple[ConformTarget | None, float | None]:
    """The planned conform of a ``"conform": true`` line and the conformed clip's duration."""
    conform, span = record.get("conform", False), record.get("range")
    if not isinstance(conform, bool):
        check.add(f"conform must be true or false, got {conform!r}")
        return None, None
    if span is not None and not conform:
        check.add('range chooses the span to conform: add "conform": true')
    if not conform:
        return None, None
    if "video_path" not in source:
        if source:
            check.add("conform needs a local clip: give the video's path, not a URL or id")
        return None, None
    duration = record.get("duration")
    if duration is not None and str(duration) not in validate.DURATION_CHOICES:
        return None, None  # the duration check names it
    target, problems = probes.conform(Path(source["video_path"]), span, duration)
    for problem in problems:
        check.add(problem)
    return target, target.plan.duration_s if target else None


def _selections(raw: object, check: _Checker) -> tuple:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        check.add('select must be a list of {"frame": N, "points": [[x, y], ...]}')
        return ()
    scratch = SelectionState(session_id="(manifest)")
    result = []
    for i, item in enumerate(raw):
        where = f"select[{i}]: "
        if not isinstance(item, dict) or set(item) != {"frame", "points"}:
            check.add(where + 'must be {"frame": N, "points": [[x, y], ...]}')
            continue
        before = len(check.messages)
        frame = check.run(lambda item=item: validate.frame_index(item["frame"]), where)
        points = check.run(lambda item=item: validate.points(item["points"]), where)
        if len(check.messages) == before:
            check.run(lambda f=frame, p=points: scratch.check_add(f, p), where)
        if len(check.messages) > before:
            continue
        scratch.record(frame, points, [], added=True)
        result.append((frame, tuple(points)))
    return tuple(result)


def _optional_str(record: Mapping, key: str, check: _Checker) -> str | None:
    value = record.get(key)
    if value is not None and not isinstance(value, str):
        check.add(f"{key} must be a string or null, got {type(value).__name__}")
        return None
    return value


def _meta(record: Mapping, check: _Checker) -> dict[str, Any] | None:
    """The line's ``meta`` object (``None`` when absent), checked to be a small JSON object."""
    meta = record.get("meta")
    if meta is None:
        return None
    if not isinstance(meta, dict):
        check.add(f"meta must be a JSON object ({{...}}) or null, got {type(meta).__name__}")
        return None
    size = len(json.dumps(meta, ensure_ascii=False).encode("utf-8"))
    if size > META_MAX_BYTES:
        check.add(f"meta is {size} bytes of JSON, over the limit of {META_MAX_BYTES}: keep "
                  "only what identifies the shot (it is copied into every report)")
        return None
    return meta


def _check_record(record: object, base: Path, probes: _Probes,
                  local_ok: bool) -> tuple[str | None, dict[str, Any], list[str]]:
    """``(name, EditJob-like fields, problems)`` of one parsed line."""
    check = _Checker()
    if not isinstance(record, dict):
        return None, {}, ["each line must be a JSON object (one job)"]
    unknown = sorted(set(record) - set(FIELDS))
    if unknown:
        check.add(f"unknown field(s) {', '.join(map(repr, unknown))}: the fields are "
                  f"{', '.join(FIELDS)}")
    name = record.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        check.add(f"name {name!r} must be 1-120 letters, digits, '_' or '-' (starting with a "
                  "letter or digit): it names the output files")
        name = None
    source, clip_s = _video(record.get("video"), base, probes, check, local_ok,
                            conform=record.get("conform") is True)
    conform, conformed_s = _conform(record, source, probes, check)
    clip_s = conformed_s if conform else clip_s
    selections = _selections(record.get("select"), check)
    edit_mode = record.get("edit_mode")
    images_raw = record.get("images") or []
    images: list[str] = []
    if not isinstance(images_raw, list) or not all(isinstance(i, str) for i in images_raw):
        check.add("images must be a list of paths or http(s) URLs")
        images_raw = []
    for number, image in enumerate(images_raw, start=1):
        if image.lower().startswith(_URL_PREFIXES):
            images.append(image)
            continue
        path = Path(_resolve(base, image))
        problem = probes.image(path, f"image {number}")
        if problem:
            check.add(f"images[{number - 1}]: {problem}")
        images.append(str(path))
    prompt = record.get("prompt")
    negative = _optional_str(record, "negative_prompt", check)
    mode = record.get("mode") if record.get("mode") is not None else "std"
    selection_broken = any(m.startswith("select") for m in check.messages)
    problems = validate.task(
        edit_mode=edit_mode, prompt=prompt, images=images, negative_prompt=negative,
        mode=mode, duration=record.get("duration"), session_duration_s=clip_s,
        marked_frames=None if selection_broken else len(selections), duration_later=True)
    for problem in problems:
        if problem.field == "selection":  # said in the manifest's words
            check.add(f"{edit_mode} needs a selection: give select with at least one point "
                      "on the element")
        else:
            check.add(problem.message)
    if any(p.field == "edit_mode" for p in problems):
        edit_mode = None
    duration = (str(record["duration"]) if record.get("duration") is not None
                and not any(p.field == "duration" for p in problems) else None)
    watermark = record.get("watermark", False)
    if not isinstance(watermark, bool):
        check.add(f"watermark must be true or false, got {watermark!r}")
    model_name = _optional_str(record, "model_name", check)
    fields = {
        **source, "edit_mode": edit_mode, "prompt": prompt, "selections": selections,
        "images": tuple(images), "negative_prompt": negative, "mode": mode,
        "duration": duration if record.get("duration") is not None else None,
        "watermark": watermark is True, "model_name": model_name,
    }
    match = record.get("match_source", False)
    if not isinstance(match, bool):
        check.add(f"match_source must be true or false, got {match!r}")
    elif match and record.get("conform") is not True:
        check.add('match_source brings a conformed clip\'s result back to the plate: add '
                  '"conform": true')
    if conform is not None:
        fields["conform"] = conform
        fields["match_source"] = match is True
    fields["meta"] = _meta(record, check)
    fields["expected_duration"] = duration or (
        validate.duration_for(clip_s) if clip_s is not None else None)
    return name, fields, check.messages


def _settings(record: dict, at_top: bool) -> tuple[Decimal | None, list[str]]:
    """The budget of a settings line and its problems."""
    problems = []
    if not at_top:
        problems.append(f'the {{"{SETTINGS_KEY}": {{...}}}} settings line must be the first line')
    settings = record[SETTINGS_KEY]
    if set(record) != {SETTINGS_KEY} or not isinstance(settings, dict):
        return None, [*problems, f'a settings line is only {{"{SETTINGS_KEY}": {{"budget": '
                                 'UNITS}}, with no job fields']
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        problems.append(f"unknown setting(s) {', '.join(map(repr, unknown))}: the settings are "
                        f"{', '.join(SETTINGS)}")
    raw = settings.get("budget")
    budget = None
    if raw is not None:
        try:
            ok_type = isinstance(raw, (int, float, str)) and not isinstance(raw, bool)
            budget = Decimal(str(raw).strip()) if ok_type else None
        except InvalidOperation:
            budget = None
        if isinstance(raw, float) and not math.isfinite(raw):
            budget = None
        if budget is None or not budget.is_finite() or budget < 0:
            problems.append(f"budget {raw!r} must be a number of units >= 0, e.g. 50")
            budget = None
    return budget, problems


def from_records(
    records: Iterable[tuple[int, object]], base_dir: str | os.PathLike,
    *, path: Path | None = None, local_ok: bool = True,
) -> Manifest:
    """Validate ``(line, parsed JSON)`` pairs; names are unique (also ignoring case). The
    first record may be the batch's settings (``{"batch": {...}}``)."""
    manifest = Manifest(path=path)
    probes = _Probes()
    seen: dict[str, int] = {}
    base = Path(base_dir)
    at_top = True
    for line, record in records:
        if isinstance(record, dict) and SETTINGS_KEY in record:
            manifest.budget, messages = _settings(record, at_top)
            at_top = False
            if messages:
                manifest.entries.append((line, None))
                manifest.problems.extend(Problem(line, None, m) for m in messages)
            continue
        at_top = False
        if isinstance(record, _Unparsable):
            manifest.entries.append((line, None))
            manifest.problems.append(Problem(line, None, record.message))
            continue
        name, fields, messages = _check_record(record, base, probes, local_ok)
        if name is not None:
            first = seen.setdefault(name.lower(), line)
            if first != line:
                messages.append(f"name {name!r} is already used on line {first} (names must "
                                 "differ also ignoring case: they name the output files)")
        manifest.entries.append((line, name))
        manifest.problems.extend(Problem(line, name, m) for m in messages)
        if not messages and name is not None:
            conform = fields.pop("conform", None)
            match = fields.pop("match_source", False)
            meta = fields.pop("meta", None)
            expected = fields.pop("expected_duration", None)
            manifest.jobs.append(BatchJob(line=line, name=name, spec=EditJob(output="", **fields),
                                          conform=conform, match_source=match, meta=meta,
                                          expected_duration=expected))
    return manifest


@dataclass(frozen=True)
class _Unparsable:
    message: str


def _lines(text: str) -> Iterable[tuple[int, object]]:
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            yield number, json.loads(raw)
        except ValueError as exc:
            yield number, _Unparsable(f"not valid JSON ({exc})")


def load(path: str | os.PathLike, *, local_ok: bool = True) -> Manifest:
    """Read and validate a JSON Lines manifest (blank lines are skipped).

    Raises ``ValidationError`` only when the file cannot be read at all; problems of its
    lines are in ``Manifest.problems`` (``raise_for_problems`` turns them into one error).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"manifest {str(path)!r} cannot be read: {exc}") from None
    manifest = from_records(_lines(text), path.resolve().parent, path=path, local_ok=local_ok)
    if not manifest.entries:
        raise ValidationError(f"manifest {str(path)!r} has no jobs: write one JSON object "
                              "per line")
    return manifest
