"""A user's own command publishes the clip (rclone, scp to a web server, in-house tools).

The template is split like a shell would (``shlex``) but run without one: ``{path}`` and
``{name}`` are replaced inside each argument, so a path with spaces or quotes stays one
argument and nothing in it is interpreted. The last non-empty line the command prints on
stdout is the URL. A command that needs pipes or ``&&`` says so itself:
``sh -c 'rclone copyto "$1" r2:clips/"$2" && rclone link r2:clips/"$2"' _ {path} {name}``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from ..errors import ValidationError
from ..sigv4 import redact
from .base import HostingError, ProgressCallback, check_clip
from .url import check_http_url

__all__ = ["PLACEHOLDERS", "CommandHost", "command_problems"]

PLACEHOLDERS = ("path", "name")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_STDERR_SHOWN = 1500


def command_problems(template: str, timeout_s: float) -> list[str]:
    """What is wrong with a command template and its time limit (empty when usable)."""
    if not template.strip():
        return ["the hosting command is empty: give a command that uploads {path} and prints "
                "its URL, e.g. \"my-upload {path}\""]
    try:
        argv = shlex.split(template)
    except ValueError as exc:
        return [f"the hosting command cannot be split into arguments ({exc}): close its quotes"]
    problems = []
    used = {m for arg in argv for m in _PLACEHOLDER.findall(arg)}
    unknown = sorted(used - set(PLACEHOLDERS))
    if unknown:
        problems.append(f"the hosting command uses unknown placeholder(s) "
                        f"{', '.join('{' + u + '}' for u in unknown)}: only {{path}} and "
                        "{name} are replaced")
    if "path" not in used:
        problems.append("the hosting command has no {path} placeholder: without it the "
                        "command cannot know which file to upload")
    if not timeout_s > 0:
        problems.append(f"the hosting command's time limit {timeout_s!r} s must be above 0 "
                        "(default 600)")
    return problems


def _tail(data: bytes) -> str:
    text = redact(data.decode("utf-8", "replace")).strip()
    return text if len(text) <= _STDERR_SHOWN else "..." + text[-_STDERR_SHOWN:]


class CommandHost:
    """Runs a command template to publish a clip; its last stdout line is the URL.

    Guarantees: no shell is involved (arguments are substituted after splitting); the
    command gets no stdin and at most ``timeout_s`` seconds, after which it and the
    processes it started are killed; a failure (non-zero exit, timeout, no http(s) URL on
    the last line) is a :class:`HostingError` that quotes the end of its stderr.
    """

    def __init__(self, template: str, timeout_s: float = 600.0) -> None:
        problems = command_problems(template, timeout_s)
        if problems:
            raise ValidationError("; ".join(problems))
        self._template = template
        self._argv = shlex.split(template)
        self._timeout_s = float(timeout_s)

    def __repr__(self) -> str:
        return f"CommandHost(program={self._argv[0]!r}, timeout_s={self._timeout_s:g})"

    @property
    def identity(self) -> str:
        """The command only as a hash: it may carry a token."""
        return f"command {hashlib.sha256(self._template.encode()).hexdigest()[:16]}"

    def argv(self, path: str | os.PathLike) -> list[str]:
        """The arguments the command runs with for ``path``."""
        values = {"path": str(path), "name": Path(path).name}
        return [_PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), arg)
                for arg in self._argv]

    def _run(self, argv: list[str]) -> tuple[int, bytes, bytes]:
        program = argv[0]
        try:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=sys.platform != "win32",
            )
        except OSError as exc:
            raise HostingError(
                f"the hosting command {program!r} could not start ({exc.strerror or exc}): "
                "check that it is installed and on PATH", provider="command",
            ) from None
        try:
            out, err = process.communicate(timeout=self._timeout_s)
        except subprocess.TimeoutExpired:
            self._kill(process)
            _, err = process.communicate()
            raise HostingError(
                f"the hosting command {program!r} did not finish within "
                f"{self._timeout_s:g} s and was stopped: raise the time limit "
                f"(command_timeout_s) or check the command. Its stderr ended with:\n"
                f"{_tail(err) or '(nothing)'}", provider="command",
            ) from None
        except BaseException:
            self._kill(process)
            process.communicate()
            raise
        return process.returncode, out, err

    @staticmethod
    def _kill(process: subprocess.Popen) -> None:
        """Kill the command and what it started (its process group), not just the leader."""
        with contextlib.suppress(OSError):
            if sys.platform != "win32":
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()

    def publish(self, path: str | os.PathLike, on_progress: ProgressCallback | None = None) -> str:
        """Run the command for ``path`` (after the local clip check); return its URL."""
        path = Path(path).resolve()
        check_clip(path)
        size = path.stat().st_size
        if on_progress:
            on_progress(0, size)
        argv = self.argv(path)
        code, out, err = self._run(argv)
        if code != 0:
            raise HostingError(
                f"the hosting command {argv[0]!r} failed with exit status {code}. Its stderr "
                f"ended with:\n{_tail(err) or '(nothing)'}", provider="command",
            )
        lines = [line.strip() for line in out.decode("utf-8", "replace").splitlines()]
        url = next((line for line in reversed(lines) if line), "")
        try:
            check_http_url(url, "the hosting command's last output line")
        except ValidationError as exc:
            raise HostingError(
                f"{exc}; the command {argv[0]!r} must print the clip's public URL as its "
                f"last line. Its stderr ended with:\n{_tail(err) or '(nothing)'}",
                provider="command",
            ) from None
        if on_progress:
            on_progress(size, size)
        return url
