"""Which edit a state file belongs to, by content: any machine resumes any job.

A job's state file (``workflow.run_edit``) carries a fingerprint of the job, so it is never
applied to a different edit. The fingerprint names local files by what they hold, not by
where they are: farm machines mount the shared folder at different paths (``/mnt/show``,
``S:\\``), and a job moved to another machine or a copy of the folder must resume its task,
not start a second one.

Hashing stays bounded for big files: a file of up to :data:`FULL_HASH_LIMIT` bytes is
hashed whole (SHA-256, the digest the upload cache needs anyway, remembered per process by
``hosting.content_sha256``); a bigger one by its size and :data:`SAMPLES` evenly spaced
blocks of :data:`SAMPLE_BYTES` (its first and last included), so at most 16 MiB is read
whatever its size. A conformed clip is named by its conform key (the plate's bytes and the
plan), never by the rendered bytes, which another machine's encoder may not reproduce.

Keys written before this scheme (16 hex digits over absolute paths) are recognised: see
:func:`match_state`.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .workflow import EditJob

__all__ = ["FULL_HASH_LIMIT", "content_key", "file_fingerprint", "legacy_key", "match_state"]

FULL_HASH_LIMIT = 64 << 20
SAMPLES = 16
SAMPLE_BYTES = 1 << 20
KEY_PREFIX = "c1-"
_URL_PREFIXES = ("http://", "https://")

_sampled: OrderedDict[tuple[str, int, int], str] = OrderedDict()
_sampled_lock = threading.Lock()


def _sampled_sha256(path: Path, size: int) -> str:
    digest = hashlib.sha256(str(size).encode())
    step = (size - SAMPLE_BYTES) / (SAMPLES - 1)
    with open(path, "rb") as handle:
        for index in range(SAMPLES):
            handle.seek(round(index * step))
            digest.update(handle.read(SAMPLE_BYTES))
    return digest.hexdigest()


def file_fingerprint(path: str | os.PathLike) -> str:
    """What a local file holds, independent of its path and mtime.

    ``sha256:<hex>`` of the whole file up to :data:`FULL_HASH_LIMIT` bytes, else
    ``sampled:<hex>`` over its size and 16 blocks of 1 MiB. Raises ``OSError`` when the
    file cannot be read.
    """
    from .hosting.base import content_sha256

    path = Path(path)
    stat = path.stat()
    if stat.st_size <= FULL_HASH_LIMIT:
        return "sha256:" + content_sha256(path)
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _sampled_lock:
        known = _sampled.get(memo)
    if known is None:
        known = _sampled_sha256(path, stat.st_size)
        with _sampled_lock:
            _sampled[memo] = known
            while len(_sampled) > 256:
                _sampled.popitem(last=False)
    return "sampled:" + known


def _local(value: str) -> bool:
    return not value.lower().startswith(_URL_PREFIXES)


def _identity(path: str) -> str:
    try:
        return file_fingerprint(path)
    except OSError:
        # The run itself names the missing file; a state file it would match cannot exist
        # for a job whose inputs were never readable.
        return f"unreadable:{Path(path).name}"


def content_key(job: EditJob) -> str:
    """The job's fingerprint: every field but the output, local files by their content."""
    spec = asdict(job)
    for field in ("output", "video_digest", "video_path"):
        spec.pop(field, None)
    if job.video_path is not None:
        spec["video"] = job.video_digest or _identity(job.video_path)
    spec["images"] = [_identity(image) if _local(image) else image for image in job.images]
    text = json.dumps(spec, sort_keys=True)
    return KEY_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:24]


def legacy_key(job: EditJob) -> str:
    """The key versions before content keys wrote: the job's fields with absolute paths."""
    spec = asdict(job)
    spec.pop("output")
    spec.pop("video_digest", None)
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def match_state(saved: object, job: EditJob) -> Literal["same", "legacy", "other"]:
    """Whether a state file whose ``job`` field is ``saved`` belongs to ``job``.

    ``same``: its content key (or its old key at the same paths: written before an upgrade,
    on this machine). ``legacy``: an old key that cannot be checked (the job's files were
    elsewhere when it was written). Such a file is taken as this job's, by its place (the
    job's name in this output folder): its task may be paid for, and the saved
    ``external_task_id`` is looked up before anything is created, so an upgrade in the
    middle of a batch never pays twice; ``workflow`` drops its session (made for points
    the line may no longer have). ``other``: a content key of a different edit (refuse it).
    """
    if not isinstance(saved, str):
        return "other"
    if saved == content_key(job) or saved == legacy_key(job):
        return "same"
    if len(saved) == 16 and all(c in "0123456789abcdef" for c in saved):
        return "legacy"
    return "other"
