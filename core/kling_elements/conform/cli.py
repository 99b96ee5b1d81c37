"""The command line of conform: ``kling-elements conform`` and ``edit --conform``.

``cli`` registers these and routes to them; this module keeps their options, their output
and their checks in one place. Every refusal is a ConformError (a ``ValueError``), which the
CLI prints as one ``error:`` line with exit status 1; nothing is written before it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import ValidationError
from .plan import ConformPlan, needs_conform, record_path
from .run import (
    Prepared,
    check_destination,
    conform_file,
    duration_choice,
    fps_choice,
    prepare,
    reusable,
)

__all__ = ["add_edit_options", "add_parser", "cmd_conform", "conform_for_edit",
           "refuse_unconformed", "resolve_points", "session_frame", "source_mark"]

_TIME_HELP = "seconds (2.5) or a source frame (f60, counted from f0)"


class _Meter:
    """Conform progress on stderr: in place on a terminal, every 10% otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.tty = quiet, sys.stderr.isatty()
        self._shown = -1
        self._last = 0.0

    def line(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        percent = 100 * done // total
        now = time.monotonic()
        if self.tty:
            if done == total or now - self._last >= 0.1:
                self._last = now
                end = "\n" if done == total else ""
                print(f"\r\033[Kconforming: frame {done}/{total} ({percent}%)", end=end,
                      file=sys.stderr, flush=True)
        elif percent // 10 > self._shown // 10 or done == total:
            self._shown = percent
            print(f"conforming: frame {done}/{total} ({percent}%)", file=sys.stderr, flush=True)


def describe(prepared: Prepared) -> list[str]:
    """What the user reads before the render: source, window, changes."""
    media, plan = prepared.media, prepared.plan
    rate = f"~{media.fps:.3g} fps (variable)" if media.variable_rate else f"{media.fps:g} fps"
    return [
        f"source: {Path(media.path).name}: {media.width}x{media.height}, {rate}, "
        f"{media.frame_count} frames ({media.duration_s:.2f} s), {media.codec}",
        prepared.window_text(),
        "changes: " + ("; ".join(plan.reasons) or "none (re-encoded as Kling's H.264 MP4)"),
    ]


def _summary(plan: ConformPlan) -> dict[str, Any]:
    return {"output": plan.output, "record": str(record_path(plan.output)),
            "fps": plan.fps, "width": plan.width, "height": plan.height,
            "frame_count": plan.frame_count, "duration_s": plan.duration_s,
            "first_frame": plan.first_frame, "last_frame": plan.last_frame,
            "reasons": list(plan.reasons)}


def source_mark(text: str) -> Any:
    """A point's time in source terms: ``f120`` or seconds with a unit or a decimal point
    (``2.5s``, ``2.0``); a plain integer is a session frame, not this."""
    from .source import Mark

    if text.isdigit():
        raise ValidationError(f"{text!r} is a session frame, not a source time")
    return Mark.parse(text)


def _time_arg(text: str) -> str:
    from .source import Mark

    try:
        Mark.parse(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Register ``conform`` on the CLI's subparsers."""
    text = "make a clip Kling accepts (24/30/60 fps, 720-2160 px, 2-5 s or 7-10 s) with PyAV"
    p = sub.add_parser("conform", parents=[common], help=text, description=text)
    p.set_defaults(func=None)
    p.add_argument("source", metavar="IN", help="any video FFmpeg reads (.mp4, .mov, ...)")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="the conformed .mp4 (its record goes to OUT.json)")
    p.add_argument("--fps", default="auto", choices=("auto", "24", "30", "60"),
                   help="output rate (default: the allowed rate nearest to the source's)")
    p.add_argument("--duration", default="auto", choices=("auto", "5", "10"),
                   help="at most 5 s or 10 s (default: keep the span if Kling allows it, "
                        "else the longest allowed length)")
    p.add_argument("--start", type=_time_arg, metavar="T",
                   help=f"first frame of the span: {_TIME_HELP}; default: the clip's start")
    p.add_argument("--end", type=_time_arg, metavar="T",
                   help=f"where the span stops (frames starting before it are in): {_TIME_HELP}")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    return p


def cmd_conform(args: argparse.Namespace) -> int:
    """Run ``kling-elements conform``; exit status 0, or a ConformError for main to print."""
    meter = _Meter(args.quiet)

    def on_plan(prepared: Prepared) -> None:
        for line in describe(prepared):
            meter.line(line)

    plan = conform_file(args.source, args.output, fps=args.fps, duration=args.duration,
                        start=args.start, end=args.end, force=args.force, on_progress=meter,
                        on_plan=on_plan)
    if args.json:
        print(json.dumps(_summary(plan), indent=1))
    else:
        meter.line(f"wrote {plan.frame_count} frames ({plan.duration_s:.2f} s at {plan.fps} fps,"
                   f" {plan.width}x{plan.height}); record: {record_path(plan.output)}")
        print(plan.output)
    return 0


# ------------------------------------------------------------------ edit --conform


def add_edit_options(p: argparse.ArgumentParser) -> None:
    """``edit``'s conform options."""
    g = p.add_argument_group("conform", "bring a clip that breaks Kling's rules into them first "
                             "(PyAV; see 'kling-elements conform --help')")
    g.add_argument("--conform", action="store_true",
                   help="conform the clip first (written beside OUTPUT as "
                        "<OUTPUT stem>.conformed-<digest>.mp4, reused when unchanged)")
    g.add_argument("--start", type=_time_arg, metavar="T",
                   help=f"with --conform: first frame of the span, {_TIME_HELP}")
    g.add_argument("--end", type=_time_arg, metavar="T",
                   help=f"with --conform: where the span stops, {_TIME_HELP}")
    g.add_argument("--match-source", action="store_true",
                   help="with --conform: write OUTPUT at the source's frame rate, size and "
                        "timing over the conformed span (to lay over the plate 1:1); Kling's "
                        "own result is kept as <OUTPUT stem>.kling.mp4")


def kling_output(args: argparse.Namespace, output: Path) -> Path:
    """Where Kling's result goes: OUTPUT, or beside it with ``--match-source``."""
    if not getattr(args, "match_source", False):
        return output
    return output.with_name(f"{output.stem}.kling{output.suffix or '.mp4'}")


def _state_done(args: argparse.Namespace, output: Path) -> bool:
    state = Path(args.state) if args.state else output.with_name(output.name + ".kling.json")
    try:
        return bool(json.loads(state.read_text()).get("done"))
    except (OSError, ValueError, AttributeError):
        return False


def check_match_source(args: argparse.Namespace) -> None:
    """Refuse, before anything is sent, ``--match-source`` without ``--conform`` or over a
    file this edit did not write (unless ``--force``)."""
    if not getattr(args, "match_source", False):
        return
    if not args.conform:
        raise ValidationError("--match-source brings a conformed clip's result back to the "
                              "source: add --conform")
    output = Path(args.output)
    if output.exists() and not args.force and not _state_done(args, output):
        raise ValidationError(f"output {str(output)!r} already exists and would be replaced: "
                              "choose another -o, or pass --force to replace it")


def match_result(args: argparse.Namespace, plan: ConformPlan | None, result: Path,
                 output: Path, line: Any) -> Path | None:
    """With ``--match-source``: write OUTPUT from Kling's result in the source's terms."""
    if not getattr(args, "match_source", False) or plan is None:
        return None
    if output.exists() and not args.force:
        line(f"{output} is this edit's matched result already: kept")
        return output
    from .match import match_source

    match_source(result, plan, output, on_progress=_Meter(getattr(args, "quiet", False)))
    line(f"matched to the source ({plan.source_fps:g} fps, the source's size and timing): "
         f"{output}; Kling's result: {result}")
    return output


def refuse_unconformed(path: Path) -> None:
    """Refuse (before anything is sent) a local clip that breaks Kling's rules, naming
    ``--conform``. Without PyAV the later upload check decides."""
    try:
        from .source import probe_source
        media = probe_source(path)
    except ImportError:
        return
    problems = needs_conform(media.info(), variable_rate=media.variable_rate)
    if problems:
        raise ValidationError(f"video {str(path)!r} breaks Kling's rules: " + "; ".join(problems)
                              + ". Add --conform to conform it first (or run 'kling-elements "
                              "conform IN -o OUT' and edit OUT)")


def conform_for_edit(args: argparse.Namespace, path: Path, output: Path,
                     line: Any) -> tuple[Path, ConformPlan]:
    """Conform ``path`` for ``edit --conform`` beside ``output``; reuse an unchanged result.

    The conformed clip's name carries the plan's digest, so a changed source or span is a
    different clip (and a different edit), never a stale one. Returns the clip and its plan.
    """
    choice = duration_choice(getattr(args, "duration", None))
    prepared = prepare(path, fps=fps_choice(None), duration=choice, start=args.start,
                       end=args.end, out_dir=output.absolute().parent,
                       name=f"{output.stem}.conformed")
    plan = prepared.plan
    resolve_points(getattr(args, "point", None) or [], path, plan, lambda _: None)
    for text in describe(prepared):
        line(text)
    if reusable(plan):
        line(f"conformed clip {plan.output} is up to date: reused")
        return Path(plan.output), plan
    check_destination(path, plan.output, force=True)
    from .render import render

    meter = _Meter(getattr(args, "quiet", False))
    render(plan, media=prepared.media, on_progress=meter)
    line(f"conformed clip: {plan.output}")
    return Path(plan.output), plan


# ------------------------------------------------------------------ points in source terms


def resolve_points(points: list[tuple[Any, tuple[float, float]]], source: Path | None,
                   plan: ConformPlan | None, line: Any) -> list[tuple[int, tuple[float, float]]]:
    """``--point`` values as session frames: a plain number already is one; ``f120`` or
    ``2.5s`` (source terms) go through the conform record (or, for a clip sent as it is,
    are its own frames). Normalized coordinates need no change: conforming scales the
    whole picture, aspect kept."""
    from .source import Mark, probe_source

    marks = [frame for frame, _ in points if isinstance(frame, Mark)]
    if not marks:
        return points
    if source is None:
        raise ValidationError(f"point {marks[0].text} is in source terms, which need a local "
                              "clip: give the clip's path, or a frame of the normalized video")
    media = probe_source(source if plan is None else plan.source)
    resolved = []
    for frame, point in points:
        if isinstance(frame, Mark):
            session = session_frame(frame, media, plan)
            line(f"point {frame.text} (source frame f{_source_frame(frame, media)}) -> session "
                 f"frame {session}")
            frame = session
        resolved.append((frame, point))
    return resolved


def _source_frame(mark: Any, media: Any) -> int:
    return mark.start_frame(media, what="point")


def session_frame(mark: Any, media: Any, plan: ConformPlan | None) -> int:
    """The session frame showing the source frame ``mark`` names (see docs/conform.md).

    Through the record: the first conformed frame showing that source frame, else the one
    showing the source frame nearest to it. A source frame outside the conformed span is
    refused with the span.
    """
    frame = _source_frame(mark, media)
    if plan is None:
        return frame
    k = plan.output_frame(frame)
    if k is None:
        first, last = plan.first_frame, plan.last_frame
        raise ValidationError(
            f"point {mark.text} is source frame f{frame}, outside the conformed span "
            f"f{first}-f{last} ({media.times[first]:.2f}-{media.times[first] + plan.duration_s:.2f}"
            " s): choose a time inside it, or move the span with --start/--end")
    return k
