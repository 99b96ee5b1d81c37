"""The command line of ``kling-elements otio``: ``to-manifest`` and ``add-results``.

``cli`` registers these and routes to them. Refusals are ``TimelineError``s (a
``ValueError``) listing every problem; the CLI prints them with exit status 1 and nothing
is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "cmd_otio"]


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Register ``otio`` and its two commands on the CLI's subparsers."""
    text = "OpenTimelineIO: marked clips to a batch manifest, batch results back as tracks"
    p = sub.add_parser("otio", parents=[common], help=text, description=text)
    p.set_defaults(func=None)
    verbs = p.add_subparsers(dest="otio_command", required=True, metavar="COMMAND")
    m = verbs.add_parser(
        "to-manifest", help="one manifest line per clip with kling_elements markers",
        description="Write a batch manifest from the timeline's marked clips "
                    "(docs/timeline.md); nothing is written if any mark is wrong.")
    m.add_argument("timeline", metavar="TIMELINE", help="a .otio file (or any format an "
                   "installed OTIO adapter reads)")
    m.add_argument("-o", "--output", metavar="MANIFEST",
                   help="the manifest to write (default: TIMELINE with .jsonl)")
    m.add_argument("--force", action="store_true", help="replace MANIFEST if it exists")
    r = verbs.add_parser(
        "add-results", help="lay each batch result over its source clip, on new tracks",
        description="Write a copy of the timeline with each result of the batch's "
                    "RESULTS_DIR on a track above its source clip.")
    r.add_argument("timeline", metavar="TIMELINE", help="the timeline to-manifest read")
    r.add_argument("results", metavar="RESULTS_DIR", help="the batch's --out folder")
    r.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="the new timeline (.otio; .edl or .xml with those OTIO adapters)")
    r.add_argument("--force", action="store_true", help="replace OUT if it exists")
    return p


def cmd_otio(args: argparse.Namespace) -> int:
    """Run ``kling-elements otio ...``; 0 when every marked clip is done."""
    try:
        return _run(args)
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.otio_command == "to-manifest":
        from .manifest import to_manifest

        output = Path(args.output or Path(args.timeline).with_suffix(".jsonl"))
        records = to_manifest(args.timeline, output, force=args.force)
        if not args.quiet:
            print(f"{len(records)} job(s) written to {output}; check them with: "
                  f"kling-elements batch {output} --out RESULTS --dry-run", file=sys.stderr)
        return 0
    from .results import add_results

    placed = add_results(args.timeline, args.results, args.output, force=args.force)
    missing = [p for p in placed if p.track is None]
    if not args.quiet:
        for item in placed:
            where = f"on {item.track!r}" if item.track else f"not placed ({item.status}: " \
                f"{item.error})"
            print(f"{item.name} ({item.clip}): {where}", file=sys.stderr)
        print(f"{len(placed) - len(missing)} of {len(placed)} result(s) added to "
              f"{args.output}", file=sys.stderr)
    return 1 if missing else 0
