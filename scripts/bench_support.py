"""What the add-on benchmarks share: a clip made in seconds at any size, a sandbox process.

``write_clip`` renders three flat-coloured ellipses gliding over a two-tone background and
encodes them straight from YUV planes (no colour conversion, x264 ``ultrafast``): a 2 s
2160x2160 clip takes a couple of seconds to make, against ~15 s for the sandbox's textured
sample. ``BenchClip.objects(frame)`` gives a click on each object (normalized, the vision
convention ``(col / (w - 1), row / (h - 1))``).

``sandbox_process`` runs ``kling-elements sandbox`` as a child process on a free port, so
the server's work (and its hold on *its* interpreter lock) is never charged to the add-on
being measured; it runs at a lower priority, as a stand-in for servers that do not share
the editor's CPU. ``--max-long-side`` keeps 2160x2160 clips (and their masks) at full size.
"""

from __future__ import annotations

import contextlib
import gc
import os
import queue
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "sandbox-api-key"  # the sandbox's well-known demo key (SandboxConfig.api_key)

# (centre x, centre y, semi-axis x, semi-axis y) in frame fractions, and an RGB colour.
_OBJECTS = (
    ((0.28, 0.34, 0.10, 0.07), (230, 100, 30)),
    ((0.62, 0.58, 0.08, 0.12), (40, 90, 220)),
    ((0.74, 0.22, 0.06, 0.06), (60, 200, 80)),
)
_WALL, _FLOOR = (96, 104, 112), (150, 140, 120)


def _yuv(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """BT.601 limited-range Y, U, V of an RGB colour (what yuv420p H.264 stores)."""
    r, g, b = (c / 255 for c in rgb)
    return (round(16 + 65.481 * r + 128.553 * g + 24.966 * b),
            round(128 - 37.797 * r - 74.203 * g + 112.0 * b),
            round(128 + 112.0 * r - 93.786 * g - 18.214 * b))


@dataclass(frozen=True)
class BenchClip:
    path: Path
    width: int
    height: int
    fps: int
    frame_count: int

    def _centre(self, frame: int, index: int) -> tuple[float, float]:
        (cx, cy, _, _), _ = _OBJECTS[index]
        t = frame / self.frame_count
        return (cx + 0.08 * np.sin(2 * np.pi * t + index),
                cy + 0.04 * np.cos(2 * np.pi * t + index))

    def objects(self, frame: int) -> list[tuple[float, float]]:
        """A click on each of the three objects on ``frame`` (their centres, normalized)."""
        return [tuple(float(v) for v in self._centre(frame, i)) for i in range(len(_OBJECTS))]

    def _planes(self, frame: int, background: np.ndarray) -> np.ndarray:
        w, h = self.width, self.height
        picture = background.copy()
        luma, chroma = picture[:h], picture[h:].reshape(2, h // 2, w // 2)
        for index, ((_, _, ax, ay), rgb) in enumerate(_OBJECTS):
            cx, cy = self._centre(frame, index)
            for plane, scale, value in zip((luma, *chroma), (1, 2, 2), _yuv(rgb), strict=True):
                ph, pw = plane.shape
                rows = np.arange(max(int((cy - ay) * ph) - 1, 0), min(int((cy + ay) * ph) + 2, ph))
                cols = np.arange(max(int((cx - ax) * pw) - 1, 0), min(int((cx + ax) * pw) + 2, pw))
                inside = (((rows[:, None] * scale / (h - 1) - cy) / ay) ** 2
                          + ((cols[None, :] * scale / (w - 1) - cx) / ax) ** 2) <= 1
                plane[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1][inside] = value
        return picture


def write_clip(path: Path, width: int, height: int, fps: int = 24,
               seconds: float = 2.0) -> BenchClip:
    """Write the benchmark clip (H.264 MP4, even sides) and return what clicks need."""
    import av

    clip = BenchClip(Path(path), width, height, fps, round(seconds * fps))
    background = np.empty((height * 3 // 2, width), np.uint8)
    wall, floor = _yuv(_WALL), _yuv(_FLOOR)
    split = int(height * 0.66)
    background[:split], background[split:height] = wall[0], floor[0]
    chroma = background[height:].reshape(2, height // 2, width // 2)
    for plane, index in ((chroma[0], 1), (chroma[1], 2)):
        plane[:split // 2], plane[split // 2:] = wall[index], floor[index]
    rate = Fraction(fps)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for index in range(clip.frame_count):
            frame = av.VideoFrame.from_ndarray(clip._planes(index, background),
                                               format="yuv420p")
            frame.pts, frame.time_base = index, 1 / rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return clip


@dataclass(frozen=True)
class SandboxProcess:
    base_url: str
    api_key: str
    pid: int


@contextlib.contextmanager
def sandbox_process(data_dir: Path, *, max_long_side: int = 2160, task_seconds: float = 0.5,
                    nice: int = 10, timeout_s: float = 60.0) -> Iterator[SandboxProcess]:
    """``kling-elements sandbox`` in a child process on a free port, ``nice`` steps below the
    benchmark's priority; stopped (SIGINT) on exit."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "core"), env.get("PYTHONPATH", "")) if p)
    command = [sys.executable, "-m", "kling_elements.cli", "sandbox", "--port", "0",
               "--data-dir", str(data_dir), "--task-seconds", str(task_seconds),
               "--max-long-side", str(max_long_side)]
    log = open(Path(data_dir).with_suffix(".log"), "w")  # noqa: SIM115 - closed below
    # At a lower priority: it stands in for Kling's servers, which do not share the editor's
    # CPU; its segmentation would otherwise take cores from the main thread being measured.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    # Before it starts its threads (still importing): they inherit the priority.
    os.setpriority(os.PRIO_PROCESS, process.pid, os.getpriority(os.PRIO_PROCESS, 0) + nice)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout],
                     daemon=True).start()
    try:
        while True:
            try:
                line = lines.get(timeout=timeout_s)
            except queue.Empty:
                raise RuntimeError(f"the sandbox did not start (see {log.name})") from None
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                break
        yield SandboxProcess(found.group(1), API_KEY, process.pid)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank: one of the measured values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(np.ceil(q * len(ordered))) - 1))]


@dataclass(frozen=True)
class Hold:
    """One main-thread entry as measured: wall time; the thread's CPU time; whether it
    blocked (a voluntary context switch: it waited for the interpreter lock held by a worker
    thread, or for I/O); whether the OS preempted it (an involuntary one: the core went to
    another process); the garbage collector's time inside it; whether the hypervisor ran
    something else on the machine's CPUs meanwhile (steal time moved); whether it waited for
    a page the machine had evicted (a major page fault)."""

    label: str
    wall: float
    cpu: float
    blocked: bool
    preempted: bool
    collecting: float
    stolen: bool = False
    paged: bool = False

    @property
    def held(self) -> float:
        """How long the add-on held the main thread: the wall time when the entry blocked
        (its waits are the add-on's), else the smaller of wall and CPU time (a stall of the
        virtual machine stretches wall time without a trace, CPU time can overshoot wall
        time after a context switch; the computation fits in both)."""
        return self.wall if self.blocked else min(self.wall, self.cpu)

    @property
    def disturbed(self) -> bool:
        """Stretched by the machine rather than by the add-on: preempted, stolen or paged.
        Its wall time then measures the machine, and its CPU time is no better (on this
        virtual machine a preempted entry can show more CPU time than wall time)."""
        return self.preempted or self.stolen or self.paged


class _Collections:
    """Seconds the garbage collector ran on the main thread, added up as it runs."""

    def __init__(self) -> None:
        self.total = 0.0
        self._started = 0.0
        self._main = threading.main_thread()
        gc.callbacks.append(self._note)

    def _note(self, phase: str, info: dict) -> None:
        if threading.current_thread() is not self._main:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._started


def _stolen_ticks() -> int:
    """The machine's steal time so far (``/proc/stat``, 10 ms ticks): time the hypervisor
    ran something else on our virtual CPUs. 0 where there is no such file."""
    try:
        with open("/proc/stat", "rb") as stat:
            fields = stat.readline().split()
    except OSError:
        return 0
    return int(fields[8]) if len(fields) > 8 else 0


class Holds:
    """Main-thread entries in the order they ran; ``time`` measures one.

    Kept as plain tuples while measuring: the garbage collector stops tracking tuples of
    numbers and strings, so thousands of entries do not lengthen its passes, which run on
    the main thread in the middle of the very entries being timed.
    """

    def __init__(self) -> None:
        self._rows: list[tuple[str, float, float, bool, bool, float, bool, bool]] = []
        self._collections = _Collections()

    def time(self, label: str, call, *args, **kwargs):
        stolen = _stolen_ticks()
        before = resource.getrusage(resource.RUSAGE_THREAD)
        collected = self._collections.total
        cpu, start = time.thread_time(), time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            wall, cpu = time.perf_counter() - start, time.thread_time() - cpu
            after = resource.getrusage(resource.RUSAGE_THREAD)
            self._rows.append((label, wall, cpu, after.ru_nvcsw > before.ru_nvcsw,
                               after.ru_nivcsw > before.ru_nivcsw,
                               self._collections.total - collected,
                               _stolen_ticks() > stolen, after.ru_majflt > before.ru_majflt))

    def relabel_last(self, label: str) -> None:
        self._rows[-1] = (label, *self._rows[-1][1:])

    @property
    def entries(self) -> list[Hold]:
        return [Hold(*row) for row in self._rows]

    def of(self, label: str) -> list[Hold]:
        return [Hold(*row) for row in self._rows if row[0] == label]


class _View2D:
    @staticmethod
    def region_to_view(x: float, y: float) -> tuple[float, float]:
        return x, y


class _Region:
    x = y = 0
    view2d = _View2D()


@dataclass(frozen=True)
class _Event:
    mouse_x: float
    mouse_y: float


class FakeClick:
    """A left click at view point ``(vx, vy)`` of a Preview whose view is its region's pixels,
    for ``KLING_OT_select_points.click`` (the modal tool's handler, mapping included)."""

    def __init__(self, vx: float, vy: float) -> None:
        self.region = _Region()
        self.event = _Event(vx, vy)
