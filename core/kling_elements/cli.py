"""The ``kling-elements`` command: every endpoint, one-shot ``edit``, and the local sandbox.

Credentials come from ``KLINGAI_*`` variables or flags (never printed). Progress goes to
stderr, results to stdout (``--json`` for scripts). Any failure exits non-zero with a
single ``error: ...`` line that says what to do.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

from . import __version__, batch, cli_sessions, validate
from .batch.display import BatchDisplay
from .client import REGIONS, Client
from .conform import cli as conform_cli
from .cost import Cost, json_number
from .errors import KlingError
from .hosting import KINDS, Host, HostingSettings, UrlHost, default_cache_dir, make_host
from .hosting.settings import ADDRESSING
from .otio import cli as otio_cli
from .workflow import EditJob, clip_frame_size, run_edit

__all__ = ["main"]


class _Progress:
    """Compact progress on stderr: rewritten in place on a terminal, sparse otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def line(self, text: str) -> None:
        if not self.quiet:
            print(("\r\033[K" if self.tty else "") + text, file=sys.stderr)

    def bytes(self, label: str, done: int, total: int | None) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        finished = total is not None and done >= total
        if not finished and now - self._last < (0.1 if self.tty else 2.0):
            return
        self._last = now
        pct = f"{100 * done / total:5.1f}%" if total else ""
        text = f"{label}: {done / 1e6:.1f} MB {pct}"
        if self.tty:
            print(f"\r\033[K{text}", end="\n" if finished else "", file=sys.stderr, flush=True)
        else:
            print(text, file=sys.stderr)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Cost):
        return value.to_dict()
    if isinstance(value, Decimal):
        return json_number(value)
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def _emit(args: argparse.Namespace, value: Any, text: str) -> None:
    print(json.dumps(_jsonable(value), indent=1) if args.json else text)


def _point(text: str) -> tuple[float, float]:
    try:
        x, y = text.split(",")
        return float(x), float(y)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"point {text!r} must be X,Y with numbers in [0, 1], e.g. 0.52,0.4"
        ) from None


def _frame_point(text: str) -> tuple[Any, tuple[float, float]]:
    frame, sep, rest = text.partition(":")
    if sep and frame.isdigit():
        return int(frame), _point(rest)
    try:
        mark = conform_cli.source_mark(frame) if sep else None
    except ValueError:
        mark = None
    if mark is None:
        raise argparse.ArgumentTypeError(
            f"point {text!r} must be FRAME:X,Y (FRAME a frame of the normalized video, or in "
            "the source: f<frame> or <seconds>s), e.g. 0:0.5,0.4, f120:0.5,0.4 or 2.5s:0.5,0.4"
        )
    return mark, _point(rest)


def _client(args: argparse.Namespace) -> Client:
    env = dict(os.environ)
    if args.base_url:
        env["KLINGAI_BASE_URL"] = args.base_url
    elif args.region:
        env["KLINGAI_BASE_URL"] = REGIONS[args.region]
    if args.api_key:
        env["KLINGAI_API_KEY"] = args.api_key
    if args.access_key:
        env["KLINGAI_ACCESS_KEY"] = args.access_key
    if args.secret_key:
        env["KLINGAI_SECRET_KEY"] = args.secret_key
    return Client.from_env(env, timeout=args.timeout,
                           auto_restore=not getattr(args, "no_restore", False))


def _selection_text(result: Any) -> str:
    lines = [f"frame {result.frame_index}: {len(result.masks)} object(s); cost: {result.cost}"]
    for mask in result.masks:
        height, width = mask.size  # Kling's order; shown width x height as editors read it
        area = int(mask.to_array().sum())
        lines.append(f"  object {mask.object_id}: {area} px of a {width}x{height} frame")
    return "\n".join(lines)


def _task_text(task: Any) -> str:
    text = f"{task.task_id} {task.status}"
    if task.status_msg:
        text += f": {task.status_msg}"
    if task.cost.known:
        text += f" (cost: {task.cost})"
    for video in task.videos:
        text += f"\n  video {video.id} ({video.duration} s) {video.url}"
    return text


def _step_text(step: dict[str, Any]) -> str:
    """One step of an edit's cost ledger, e.g. ``add-selection (frame 40): 0.1 units``."""
    where = ""
    if "frame_index" in step:
        where = f" (frame {step['frame_index']})"
    elif step.get("step") == "restore":
        where = f" ({step.get('count', 1)}x, init and every add again)"
    elif step.get("step") == "task" and step.get("task_id"):
        where = f" ({step['task_id']})"
    cost = step["cost"] if isinstance(step["cost"], Cost) else Cost.from_dict(step["cost"])
    return f"{step['step']}{where}: {cost}"


def _hosting_settings(args: argparse.Namespace) -> HostingSettings:
    """The hosting choice from the flags, over ``$KLING_ELEMENTS_*`` and ``$AWS_*``."""
    return HostingSettings.from_env(
        args.host_with, s3_endpoint=args.s3_endpoint, s3_region=args.s3_region,
        s3_bucket=args.s3_bucket, s3_prefix=args.s3_prefix, s3_addressing=args.s3_addressing,
        s3_expires_s=args.s3_expires, command=args.host_command,
        command_timeout_s=args.host_command_timeout, url=args.host_url,
    )


def _host(args: argparse.Namespace, client: Client, *, cached: bool = True) -> Host:
    """The provider chosen on the command line; settings are checked before any upload.

    Published URLs are remembered in the user cache folder for s3 and command (uploads that
    cost time and outlive this process), not for the sandbox, whose URLs end with it
    (unless ``--host-cache`` asks).
    """
    settings = _hosting_settings(args)
    cache_dir = None
    if cached and not getattr(args, "no_host_cache", True):
        if args.host_cache:
            cache_dir = Path(args.host_cache)
        elif settings.kind in ("s3", "command"):
            cache_dir = default_cache_dir()
    return make_host(settings, http=client.http, cache_dir=cache_dir)


def cmd_init(args: argparse.Namespace, client: Client, progress: _Progress) -> None:
    url = args.video_url
    if args.file:
        host = _host(args, client)
        progress.line(f"publishing {args.file}")
        url = host.publish(args.file, on_progress=lambda d, t: progress.bytes("upload", d, t))
    init = client.init_selection(video_url=url, video_id=args.video_id)
    record = cli_sessions.SessionRecord.of(init)
    if init.frame_size is None and args.file:  # Kling may leave them out ("unused")
        height, width = clip_frame_size(args.file) or (0, 0)
        record = dataclasses.replace(record, width=width, height=height)
    try:  # so that a later `create` knows the session's length (and `select` its frame)
        cli_sessions.save(record)
    except OSError as exc:
        progress.line(f"warning: the session's length could not be remembered ({exc}); "
                      "pass --duration to create")
    size = f"{init.width}x{init.height}, " if init.width and init.height else ""
    _emit(args, {**_jsonable(init), "duration_s": init.duration_s},
          f"session {init.session_id}: {init.total_frames} frames at "
          f"{init.fps:g} fps, {size}{init.duration_s:.2f} s "
          f"(create: --duration {validate.duration_for(init.duration_s)}); cost: {init.cost}")


def cmd_select(args: argparse.Namespace, client: Client, progress: _Progress) -> None:
    """Mark or remove points; the masks shown are read with the session's frame size.

    The client knows the frame only of sessions it opened itself; for one ``init`` opened in
    an earlier process, its record gives the frame, so a ``size`` Kling wrote as ``[w, h]``
    is read as ``[h, w]`` here too (docs/kling-api.md, "size order").
    """
    call = client.add_selection if args.command == "select" else client.delete_selection
    result = call(args.session_id, args.frame, args.points)
    record = None if args.session_id in client.sessions else cli_sessions.load(args.session_id)
    if record is not None and record.width and record.height:
        result = result.fit_frame((record.height, record.width))
    _emit(args, result, _selection_text(result))


def cmd_clear(args: argparse.Namespace, client: Client, progress: _Progress) -> None:
    cost = client.clear_selection(args.session_id)
    _emit(args, {"session_id": args.session_id, "cleared": True, "cost": cost},
          f"selection cleared; cost: {cost}")


def cmd_preview(args: argparse.Namespace, client: Client, progress: _Progress) -> None:
    preview = client.preview_selection(args.session_id)
    if args.download:
        out = Path(args.download)
        client.download(preview.video_url, out, overwrite=args.force,
                        on_progress=lambda d, t: progress.bytes("download", d, t))
        progress.line(f"preview saved to {out}")
    _emit(args, preview, f"preview video: {preview.video_url}\ncover: {preview.cover_url}\n"
          f"tracking: {preview.tracking_output_url}\ncost: {preview.cost}")


def _create_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "edit_mode": args.edit, "prompt": args.prompt, "images": args.image or [],
        "negative_prompt": args.negative_prompt, "mode": args.mode, "duration": args.duration,
        "watermark": args.watermark, "model_name": args.model,
    }


def cmd_create(args: argparse.Namespace, client: Client, progress: _Progress) -> None:
    """Create the task with the duration the user means, never Kling's silent default.

    The duration is ``--duration``, else derived from the session's length as ``init``
    recorded it; without either, every other option is checked and then the command is
    refused before anything is sent.
    """
    options = _create_kwargs(args)
    record = cli_sessions.load(args.session_id)
    if record is not None:
        options["duration"] = validate.duration(args.duration, record.duration_s)
    elif args.duration is None:
        client.build_task_body(session_id=args.session_id, callback_url=args.callback_url,
                               external_task_id=args.external_task_id,
                               **{**options, "duration": validate.DURATION_CHOICES[0]})
        raise validate.ValidationError(
            f"the length of session {args.session_id} is not known here (it was not started "
            "by `kling-elements init` on this machine): pass --duration 5|10: Kling defaults "
            "to 5 s and would cut a 7-10 s clip"
        )
    task = client.create_task(session_id=args.session_id, callback_url=args.callback_url,
                              external_task_id=args.external_task_id, **options)
    _emit(args, task, _task_text(task))


def cmd_status(args: argparse.Namespace, client: Client, progress: _Progress) -> None:
    task = client.get_task(args.task_id)
    _emit(args, task, _task_text(task))


def cmd_list(args: argparse.Namespace, client: Client, progress: _Progress) -> None:
    tasks = client.list_tasks(page=args.page, page_size=args.page_size)
    _emit(args, tasks, "\n".join(_task_text(t) for t in tasks) or "no tasks")


def cmd_wait(args: argparse.Namespace, client: Client, progress: _Progress) -> None:
    """Wait until the task ends; with ``--listen``, on its callbacks (polling as fallback).

    The task may have ended, or passed the status changes it calls back for, before this
    receiver started: it is looked up once first, so a finished task is not waited on for
    the callback grace period.
    """
    def on_update(task: Any) -> None:
        progress.line(f"task {task.task_id}: {task.status}")

    with _callback_receiver(args, progress) as (_, inbox):
        if inbox is not None and client.get_task(args.task_id).done:
            inbox = None
        task = client.wait(args.task_id, timeout=args.wait_timeout, on_update=on_update,
                           inbox=inbox)
    _emit(args, task, _task_text(task))


def cmd_download(args: argparse.Namespace, client: Client, progress: _Progress) -> None:
    out = client.download(args.url, args.output, overwrite=args.force,
                          on_progress=lambda d, t: progress.bytes("download", d, t))
    _emit(args, {"path": str(out)}, str(out))


def cmd_edit(args: argparse.Namespace, client: Client, progress: _Progress) -> None:
    source = args.source
    job_source: dict[str, Any] = {}
    host = None
    plan = None
    conform_cli.check_match_source(args)
    if args.video_id:
        job_source["video_id"] = args.video_id
    elif source and source.lower().startswith(("http://", "https://")):
        job_source["video_url"] = UrlHost(source).publish()
    elif source:
        path = Path(source).resolve()
        if (args.start or args.end) and not args.conform:
            raise ValueError("--start/--end choose the span to conform: add --conform")
        if args.conform:
            path, plan = conform_cli.conform_for_edit(args, path, Path(args.output),
                                                      progress.line)
        else:
            conform_cli.refuse_unconformed(path)
        job_source["video_path"] = str(path)
        host = _host(args, client)
    else:
        raise KlingError("give a clip (path or URL) or --video-id")
    if (args.start or args.end or args.conform) and "video_path" not in job_source:
        raise ValueError("--conform, --start and --end work on a local clip: give its path")
    points = conform_cli.resolve_points(
        args.point or [], Path(job_source["video_path"]) if "video_path" in job_source else None,
        plan, progress.line)
    selections: dict[int, list[tuple[float, float]]] = {}
    for frame, point in points:
        selections.setdefault(frame, []).append(point)
    output = Path(args.output)
    job = EditJob(
        output=str(conform_cli.kling_output(args, output)),
        selections=tuple((f, tuple(p)) for f, p in sorted(selections.items())),
        images=tuple(str(Path(i).resolve()) if not i.startswith(("http://", "https://")) else i
                     for i in args.image or []),
        **{k: v for k, v in _create_kwargs(args).items() if k != "images"}, **job_source,
    )
    state = Path(args.state) if args.state else output.with_name(output.name + ".kling.json")

    def on_event(kind: str, info: dict[str, Any]) -> None:
        if kind in ("upload_progress", "download_progress"):
            progress.bytes(kind.split("_")[0], info["done"], info["total"])
        elif kind == "status":
            progress.line(f"task: {info['status']}")
        elif kind == "cost":
            progress.line(f"cost: {_step_text(info)} (edit so far: {info['total']})")
        elif kind != "done":
            progress.line(f"{kind}: " + ", ".join(f"{k}={v}" for k, v in info.items()))

    with _callback_receiver(args, progress) as (callback_url, inbox):
        result = run_edit(client, job, host=host, state_path=state,
                          wait_timeout=args.wait_timeout, on_event=on_event,
                          overwrite=args.force, callback_url=callback_url, inbox=inbox)
    progress.line("cost of the edit, every step (also of earlier runs):\n"
                  + "\n".join(f"  {_step_text(step)}" for step in result.cost_steps)
                  + f"\n  total: {result.cost}")
    matched = conform_cli.match_result(args, plan, result.output, output, progress.line)
    _emit(args, {"output": matched or result.output, "kling_output": result.output,
                 "watermarked_output": result.watermarked_output, "task": result.task,
                 "cost": {"steps": result.cost_steps, "total": result.cost}},
          str(matched or result.output))


def _when(text: str) -> datetime:
    """An ISO date or date-time (local time unless it says otherwise), for ``account``."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date or date-time, e.g. 2025-01-31 or 2025-01-31T18:00"
        ) from None


def _day(millis: int) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(millis / 1000)) if millis else "?"


def _amount(value: Decimal | None) -> str:
    return "?" if value is None else format(value.normalize(), "f")


def cmd_account(args: argparse.Namespace, client: Client, progress: _Progress) -> None:
    costs = client.account_costs(args.start, args.end, resource_pack_name=args.pack)
    lines = [f"{p.name or p.pack_id}: {_amount(p.remaining)} of {_amount(p.total)} units left "
             f"({p.status}; {p.pack_type}; valid {_day(p.effective_time)} to "
             f"{_day(p.invalid_time)})" for p in costs.packs]
    lines.append(f"left in packs in effect: {_amount(costs.remaining)} units (Kling's count "
                 "may lag the latest deductions by up to 12 h)" if costs.packs
                 else "no resource pack in that period")
    _emit(args, {"packs": costs.packs, "remaining": costs.remaining}, "\n".join(lines))


WEBHOOK_SECRET_ENV = "KLINGAI_WEBHOOK_SECRET"


def _webhook_secrets(args: argparse.Namespace) -> list[str]:
    """``--webhook-secret`` values (several during a key rotation), else the env variable."""
    given = getattr(args, "webhook_secret", None) or []
    env = os.environ.get(WEBHOOK_SECRET_ENV, "").strip()
    return list(given) or ([env] if env else [])


def _delivery_text(delivery: Any) -> str:
    task = delivery.task
    ext = f" ({task.external_task_id})" if task.external_task_id else ""
    checked = "verified" if delivery.verified else "unverified"
    return (f"task {task.task_id}{ext}: {task.status} [{delivery.format}, {checked}, "
            f"{delivery.outcome}]")


@contextlib.contextmanager
def _callback_receiver(args: argparse.Namespace, progress: _Progress | None
                       ) -> Iterator[tuple[str | None, Any]]:
    """``(callback_url, inbox)`` for ``--callback-url``/``--listen``; ``(None, None)``
    without them. With ``--listen`` a receiver runs until the block ends; without
    ``--callback-url`` its own address is the URL (right for a local sandbox; Kling needs an
    address it can reach, e.g. a public URL forwarding to the listener)."""
    url = getattr(args, "callback_url", None)
    if not getattr(args, "listen", None):
        yield url, None
        return
    from .callbacks import CallbackInbox, CallbackServer, is_loopback, parse_listen

    host, port = parse_listen(args.listen)
    secrets = _webhook_secrets(args)
    if not secrets and not is_loopback(host) and progress is not None:
        progress.line(f"warning: listening on {host} without --webhook-secret: anyone who "
                      "reaches it can post deliveries (each final one is confirmed by a query)")
    inbox = CallbackInbox(
        secrets, record_dir=getattr(args, "record", None),
        on_delivery=(lambda d: progress.line(_delivery_text(d))) if progress else None,
    )
    with CallbackServer(inbox, host, port) as server:
        if progress is not None:
            progress.line(f"receiving callbacks on {server.url}")
        yield url or server.url, inbox


def cmd_callbacks(args: argparse.Namespace) -> None:
    """Receive callbacks until interrupted: print (and with --record, store) each one."""
    from .callbacks import CallbackInbox, CallbackServer, is_loopback, parse_listen

    host, port = parse_listen(args.listen)
    secrets = _webhook_secrets(args)

    def show(delivery: Any) -> None:
        if args.json:
            print(json.dumps({"outcome": delivery.outcome, "format": delivery.format,
                              "verified": delivery.verified, "webhook_id": delivery.webhook_id,
                              "task": _jsonable(delivery.task)}), flush=True)
        else:
            print(_delivery_text(delivery), flush=True)

    inbox = CallbackInbox(secrets, record_dir=args.record, on_delivery=show)
    server = CallbackServer(inbox, host, port)
    notes = [f"receiving Kling callbacks on {server.url}"]
    if secrets:
        notes.append("  deliveries must be signed with the webhook secret")
    else:
        notes.append("  unsigned deliveries are taken: pass --webhook-secret (or set "
                     f"${WEBHOOK_SECRET_ENV}) to require signatures")
        if not is_loopback(host):
            notes.append(f"  warning: {host} is reachable from other machines")
    if args.record:
        notes.append(f"  recording deliveries in {args.record}")
    print("\n".join(notes), file=sys.stderr, flush=True)
    server.serve_forever()


def _batch_manifest(args: argparse.Namespace) -> batch.Manifest:
    """The manifest, once the hosting kind is known to suit a batch (every kind but url)."""
    settings = HostingSettings.from_env(args.host_with)
    if settings.kind not in KINDS:
        raise ValueError(settings.problems()[0])
    if settings.kind == "url":
        raise ValueError("--host-with url would give every job the same URL: put each clip's "
                         "URL in the manifest instead, or choose sandbox, s3 or command")
    return batch.load(args.manifest, local_ok=True)


def cmd_batch_dry_run(args: argparse.Namespace) -> int:
    """Validate the whole manifest and list this shard's jobs; needs no credentials."""
    manifest = _batch_manifest(args)
    jobs = batch.plan(manifest, args.shard)[0]
    problems = [str(p) for p in manifest.problems]
    where = f" in shard {args.shard[0]}/{args.shard[1]}" if args.shard else ""
    _emit(args, {"valid": not problems, "jobs": [j.name for j in jobs], "problems": problems},
          "\n".join([f"{len(jobs)} valid job(s){where}: " + " ".join(j.name for j in jobs),
                     *problems]))
    if problems:
        print(f"error: {len(problems)} problem(s) in the manifest (listed above); nothing "
              "would be sent", file=sys.stderr)
    return 1 if problems else 0


def cmd_batch(args: argparse.Namespace, client: Client, progress: _Progress) -> None:
    manifest = _batch_manifest(args)
    # Not cached here: batch.run keeps its own memory of published URLs in OUT/.state/.
    host = _host(args, client, cached=False)
    display = BatchDisplay(live=None) if not progress.quiet else None
    try:
        with display or contextlib.nullcontext(), \
                _callback_receiver(args, None if display else progress) as (url, inbox):
            report = batch.run(
                manifest, args.out, client=client, host=host,
                concurrency=args.concurrency, shard=args.shard,
                skip_invalid=args.skip_invalid, on_event=display,
                wait_timeout=args.wait_timeout, budget=args.budget,
                callback_url=url, inbox=inbox,
            )
    except batch.ManifestError as exc:
        problems = [str(p) for p in exc.problems]
        if args.json:
            print(json.dumps({"problems": problems}, indent=1))
        print("\n".join(problems), file=sys.stderr)
        raise ValueError(f"{len(problems)} problem(s) in the manifest (listed above); nothing "
                         "was sent: fix them, or pass --skip-invalid") from None
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
    progress.line(report.summary())
    if not report.ok:
        counts = report.counts()
        held = (f"; {counts['held']} held back by the budget continue when run with a larger "
                "--budget" if counts["held"] else "")
        raise KlingError(f"{len(report.jobs) - counts['succeed']} of {len(report.jobs)} job(s) "
                         f"did not succeed (see {report.path}); run the same command again to "
                         f"resume{held}")


def _units(text: str) -> Decimal:
    try:
        amount = Decimal(text.strip())
    except ArithmeticError:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount < 0:
        raise argparse.ArgumentTypeError(
            f"budget {text!r} must be a number of units >= 0, e.g. 50 or 12.5")
    return amount


def _shard(text: str) -> tuple[int, int]:
    try:
        return batch.parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_sandbox(args: argparse.Namespace) -> None:
    try:
        from .sandbox import SandboxConfig, serve
    except ImportError as exc:
        raise KlingError(
            f"the sandbox needs extra packages ({exc.name}): pip install 'kling-elements[sandbox]'"
        ) from None
    config = SandboxConfig(
        host=args.host, port=args.port, data_dir=args.data_dir, task_seconds=args.task_seconds,
        pack_units=args.pack_units, max_long_side=args.max_long_side,
        webhook_secret=args.webhook_secret or os.environ.get(WEBHOOK_SECRET_ENV) or None,
        callback_format=args.callback_format,
        **{k: v for k, v in (("access_key", args.access_key), ("secret_key", args.secret_key),
                             ("api_key", args.api_key)) if v},
    )

    # Only the well-known demo keys are printed: keys given on the command line are the
    # caller's own secrets, and output is often logged.
    demo = not (args.access_key or args.secret_key or args.api_key)

    def ready(base_url: str) -> None:
        keys = (f"  export KLINGAI_ACCESS_KEY={config.access_key}\n"
                f"  export KLINGAI_SECRET_KEY={config.secret_key}\n"
                f"  (or KLINGAI_API_KEY={config.api_key}; these are the sandbox's demo keys)"
                if demo else "  use the keys given with --access-key/--secret-key/--api-key")
        print(f"Kling sandbox listening on {base_url}\n"
              f"  export KLINGAI_BASE_URL={base_url}\n{keys}", flush=True)

    serve(config, on_ready=ready)


class _Parser(argparse.ArgumentParser):
    """Usage errors, too, end in one ``error:`` line (exit status 2), not usage + message."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def _hosting_options(p: argparse.ArgumentParser, *, cache: bool) -> None:
    g = p.add_argument_group(
        "hosting", "how a local clip becomes a URL Kling can fetch (docs/hosting.md); S3 keys "
        "come only from $AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY, $AWS_SESSION_TOKEN")
    g.add_argument("--host-with", choices=KINDS,
                   help="provider (default: $KLING_ELEMENTS_HOST_WITH, else sandbox)")
    g.add_argument("--s3-endpoint", metavar="URL",
                   help="S3-compatible endpoint (default: $AWS_ENDPOINT_URL_S3, "
                        "$AWS_ENDPOINT_URL, else AWS)")
    g.add_argument("--s3-region", metavar="REGION",
                   help="default: $AWS_REGION, $AWS_DEFAULT_REGION, us-east-1")
    g.add_argument("--s3-bucket", metavar="BUCKET", help="default: $KLING_ELEMENTS_S3_BUCKET")
    g.add_argument("--s3-prefix", metavar="PREFIX",
                   help="key prefix, e.g. kling/ ($KLING_ELEMENTS_S3_PREFIX)")
    g.add_argument("--s3-addressing", choices=ADDRESSING,
                   help="bucket in the host name (virtual) or the path (default: auto)")
    g.add_argument("--s3-expires", type=int, metavar="SECONDS",
                   help="lifetime of the presigned URL given to Kling (default 3600)")
    g.add_argument("--host-command", metavar="TEMPLATE",
                   help="command (no shell) that uploads {path} (file name {name}) and prints "
                        "its URL as the last line ($KLING_ELEMENTS_HOST_COMMAND)")
    g.add_argument("--host-command-timeout", type=float, metavar="SECONDS",
                   help="time limit of the command (default 600)")
    g.add_argument("--host-url", metavar="URL",
                   help="for --host-with url: where the clip already is online")
    if cache:
        g.add_argument("--host-cache", metavar="DIR",
                       help="remember published URLs here (default for s3 and command: the "
                            "user cache folder)")
        g.add_argument("--no-host-cache", action="store_true",
                       help="publish again even if an unchanged clip's URL is still fresh")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print results as JSON")
    common.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    common.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    common.add_argument("--base-url", help="API base URL (default: $KLINGAI_BASE_URL or global)")
    common.add_argument("--region", choices=sorted(REGIONS), help="Kling region")
    common.add_argument("--api-key", help="API key (default: $KLINGAI_API_KEY)")
    common.add_argument("--access-key", help="access key (default: $KLINGAI_ACCESS_KEY)")
    common.add_argument("--secret-key", help="secret key (default: $KLINGAI_SECRET_KEY)")
    common.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser = _Parser(
        prog="kling-elements", description="Kling AI Multi-Elements video editing.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    def restore_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--no-restore", action="store_true",
                       help="never replace an expired, vanished or doubtful session by itself "
                            "(that re-runs init and every add, which Kling charges again): "
                            "stop with an error naming what a restore would replay")

    def callback_options(p: argparse.ArgumentParser, *, url: bool = True,
                         listen: bool = True) -> None:
        g = p.add_argument_group(
            "callbacks", "end waits on Kling's callbacks instead of polling (polling stays "
            "the fallback); see docs/kling-api.md" if listen else "see docs/kling-api.md")
        if url:
            g.add_argument("--callback-url", metavar="URL",
                           help="sent as callback_url (default with --listen: its address)")
        if listen:
            g.add_argument("--listen", metavar="HOST:PORT",
                           help="receive callbacks here while waiting (port 0: any free one)")
        g.add_argument("--webhook-secret", action="append", metavar="whsec_...",
                       help=f"require deliveries signed with it (repeat during a key "
                            f"rotation; default ${WEBHOOK_SECRET_ENV})")

    p = add("init", cmd_init, "start a selection session on a video")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--video-url", help="a URL Kling can download")
    src.add_argument("--video-id", help="id of a video Kling generated")
    src.add_argument("--file", help="a local clip, published with --host-with")
    _hosting_options(p, cache=True)
    for name, text in (("select", "mark points on a frame"), ("unselect", "remove points")):
        p = add(name, cmd_select, text)
        p.add_argument("session_id")
        p.add_argument("frame", type=int, help="frame index of the normalized video")
        p.add_argument("points", nargs="+", type=_point, metavar="X,Y")
    p = add("clear", cmd_clear, "remove every point of a session")
    p.add_argument("session_id")
    p = add("preview", cmd_preview, "render the tracked selection")
    p.add_argument("session_id")
    p.add_argument("--download", metavar="PATH", help="also save the preview video")
    p.add_argument("--force", action="store_true", help="replace PATH if it exists")

    def edit_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--edit", required=True, choices=validate.EDIT_MODES)
        p.add_argument("--prompt", required=True,
                       help="refer to the video as <<<video_1>>> (Kling's templates do)")
        p.add_argument("--image", action="append", help="reference image path or URL")
        p.add_argument("--negative-prompt")
        p.add_argument("--mode", default=validate.MODES[0], choices=validate.MODES)
        p.add_argument("--duration", choices=validate.DURATION_CHOICES,
                       help="result length (default: from the input's length; Kling's own "
                            "default, 5, would cut a 7-10 s clip)")
        p.add_argument("--watermark", action="store_true", help="also a watermarked copy")
        p.add_argument("--model", help="model_name (default: Kling's)")

    p = add("create", cmd_create, "create the edit task (spends credits)")
    p.add_argument("session_id")
    edit_options(p)
    p.add_argument("--callback-url")
    p.add_argument("--external-task-id")
    p = add("status", cmd_status, "show one task")
    p.add_argument("task_id", help="task_id or external_task_id")
    p = add("list", cmd_list, "list recent tasks")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--page-size", type=int, default=30)
    p = add("wait", cmd_wait, "wait until a task ends")
    p.add_argument("task_id")
    p.add_argument("--wait-timeout", type=float, default=1800.0)
    callback_options(p, url=False)
    p = add("account", cmd_account,
            "the account's resource packs and what they have left (free; 1 query a second)")
    p.add_argument("--start", type=_when, metavar="WHEN",
                   help="ISO date/time the period starts (default: a year before --end)")
    p.add_argument("--end", type=_when, metavar="WHEN", help="ISO date/time (default: now)")
    p.add_argument("--pack", metavar="NAME", help="only the resource pack of that name")
    p = add("download", cmd_download, "download a result URL")
    p.add_argument("url")
    p.add_argument("output")
    p.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    p = add("edit", cmd_edit, "one whole edit: clip -> clicks -> task -> result file")
    p.add_argument("source", nargs="?", help="a local clip or an http(s) URL")
    p.add_argument("--video-id", help="edit a video Kling generated (chains edits)")
    p.add_argument("--point", action="append", type=_frame_point, metavar="FRAME:X,Y",
                   help="a click: FRAME of the normalized video, or in the source f<frame> or "
                        "<seconds>s (mapped through the conform record); X,Y in [0, 1]")
    edit_options(p)
    p.add_argument("-o", "--output", required=True, help="where the result goes")
    p.add_argument("--force", action="store_true",
                   help="replace result files that exist (else refused before anything is sent)")
    _hosting_options(p, cache=True)
    p.add_argument("--state", help="resume file (default: OUTPUT.kling.json)")
    p.add_argument("--wait-timeout", type=float, default=1800.0)
    restore_option(p)
    conform_cli.add_edit_options(p)
    conform_cli.add_parser(sub, common)
    otio_cli.add_parser(sub, common)

    callback_options(p)

    p = add("batch", cmd_batch, "run every edit of a JSON Lines manifest: resumable, shardable")
    p.add_argument("manifest", help="JSON Lines, one job per line (see docs/batch.md)")
    p.add_argument("--out", required=True, help="folder for results, report.json and .state/")
    p.add_argument("--concurrency", type=int, default=3,
                   help="most tasks running at once (the account's concurrency; default 3)")
    p.add_argument("--shard", type=_shard, metavar="I/N",
                   help="run only the I-th of N stable subsets (by job name), for farms")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the manifest and list the jobs; send nothing")
    p.add_argument("--skip-invalid", action="store_true",
                   help="run the valid jobs even when some lines are invalid")
    p.add_argument("--budget", type=_units, metavar="UNITS",
                   help="hold back jobs once the units Kling reported for this shard's jobs "
                        "(every run) plus a job's expected cost would pass UNITS; a run with a "
                        "larger budget continues them (default: the manifest's first line "
                        '{"batch": {"budget": UNITS}}, else no limit)')
    _hosting_options(p, cache=False)
    p.add_argument("--wait-timeout", type=float, default=1800.0, help="seconds per task")
    restore_option(p)
    callback_options(p)

    text = "receive Kling's task callbacks: verify, deduplicate, print, record"
    p = sub.add_parser("callbacks", help=text, description=text)
    p.set_defaults(func=None)
    p.add_argument("--json", action="store_true", help="print each delivery as a JSON line")
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    p.add_argument("--listen", required=True, metavar="HOST:PORT",
                   help="address to listen on, e.g. 127.0.0.1:8766 or 0.0.0.0:8766")
    p.add_argument("--record", metavar="DIR",
                   help="write each delivery there as a JSON file (atomically)")
    callback_options(p, url=False, listen=False)

    p = sub.add_parser("sandbox", help="run the local API sandbox")
    p.set_defaults(func=None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--access-key")
    p.add_argument("--secret-key")
    p.add_argument("--api-key")
    p.add_argument("--data-dir")
    p.add_argument("--task-seconds", type=float, default=10.0)
    p.add_argument("--max-long-side", type=int, default=1280, metavar="PX",
                   help="longest side of the normalized video and its masks (default 1280; "
                        "2160 keeps Kling's largest clips at full size)")
    p.add_argument("--pack-units", type=float, default=10000.0,
                   help="size of the account's resource pack (/account/costs)")
    p.add_argument("--webhook-secret", metavar="whsec_...",
                   help=f"sign task callbacks with it (default ${WEBHOOK_SECRET_ENV}; unset: "
                        "unsigned)")
    p.add_argument("--callback-format", choices=("legacy", "new", "both"), default="legacy",
                   help="body format of task callbacks (default legacy, as Multi-Elements)")
    return parser


def sandbox_main(argv: Sequence[str] | None = None) -> int:
    """``kling-elements-sandbox [options]``: the same as ``kling-elements sandbox [options]``."""
    return main(["sandbox", *(sys.argv[1:] if argv is None else argv)])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the process exit code (0 ok, 1 failure, 130 interrupted)."""
    args = _parser().parse_args(argv)
    if getattr(args, "verbose", False):
        import logging
        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
    try:
        if args.command == "sandbox":
            cmd_sandbox(args)
            return 0
        if args.command == "callbacks":
            cmd_callbacks(args)
            return 0
        if args.command == "conform":
            return conform_cli.cmd_conform(args)
        if args.command == "otio":
            return otio_cli.cmd_otio(args)
        progress = _Progress(quiet=args.quiet or False)
        if args.command == "batch" and args.dry_run:
            return cmd_batch_dry_run(args)
        if args.command == "batch" and args.concurrency < 1:
            raise ValueError(f"--concurrency {args.concurrency} must be at least 1")
        with _client(args) as client:
            args.func(args, client, progress)
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (KlingError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
