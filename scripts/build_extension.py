"""Build the Blender extension: one zip per Blender Python, installable with "Install from Disk".

``dist/<id>-<version>-blender-4.2-to-5.0.zip`` (CPython 3.11) and
``dist/<id>-<version>-blender-5.1-and-later.zip`` (CPython 3.13), see ``BUILDS``. Each holds the
add-on (``blender_addon/``), its manifest with the Blender range that runs that Python
(``blender_version_min``/``blender_version_max``, so Blender refuses the other zip), and in
``wheels/`` the core (``kling_elements``, built from this repo) with the pinned wheels of its
dependencies (``scripts/extension-wheels.txt``) for that Python on every platform in
``TARGETS``. One zip for both Pythons does not work everywhere: Blender 4.2.0 filters the
bundled wheels by platform only, so it installs the 3.13 Pillow over the 3.11 one and
``from PIL import _imaging`` fails. Blender's own ``blender_ext.py`` (from a ``bpy`` wheel)
writes and validates each archive, so what passes here passes Blender's installer.

Guarantees, each checked before anything is written to ``dist/``:

- one version: ``pyproject.toml`` is the source; the manifest, ``bl_info`` and
  ``kling_elements.__version__`` must say the same (``--set-version`` rewrites all four);
- for each zip's Python and each platform in ``TARGETS``, exactly one wheel of every pinned
  package is one Blender would install there, judged by the rule Blender itself applies
  (``bl_pkg``'s ``_extensions_wheel_filter_for_this_system``), and 4.2.0's platform-only rule
  (``_extensions_wheel_filter_for_platform``) picks the very same wheels;
- every dependency a bundled wheel declares for that Python and platform is bundled too, or
  is numpy, which Blender ships;
- the core wheel carries ``py.typed`` and not the offline sandbox (``kling_elements.sandbox``,
  a server the add-on never runs: it stays with ``pip install 'kling-elements[sandbox]'``).

Downloads are cached in ``~/.cache/kling-elements/wheels`` (``KLING_WHEEL_CACHE``), so a rebuild
with an unchanged lock file does not touch the network.

Usage (any Python >= 3.11 with pip; ``make extension`` uses the newest bpy venv)::

    python scripts/build_extension.py [--split-platforms] [--blender-ext PATH]
    python scripts/build_extension.py --validate [ZIP ...]
    python scripts/build_extension.py --set-version 0.2.0
"""

from __future__ import annotations

import argparse
import email.parser
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
ADDON_DIR = ROOT / "blender_addon"
LOCK_FILE = ROOT / "scripts" / "extension-wheels.txt"
STAGING_DIR = ROOT / "build" / "extension"
DIST_DIR = ROOT / "dist"
MANIFEST = "blender_manifest.toml"
BPY_CACHE = Path(os.environ.get("BPY_CACHE", Path.home() / ".cache" / "kling-elements"))
WHEEL_CACHE = Path(os.environ.get("KLING_WHEEL_CACHE", BPY_CACHE / "wheels"))
BL_EXT_GLOB = "lib/python3*/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py"


@dataclass(frozen=True)
class Build:
    """One zip: the wheels for one CPython, for the Blender versions that run it.

    ``blender_max`` is exclusive, as in Blender's manifest (``bl_pkg`` skips a package when
    the running version is ``>=`` it); empty for no upper bound.
    """

    python: tuple[int, int]
    blender_min: str
    blender_max: str
    label: str  # in the file name: what a user matches against their Blender


BUILDS: tuple[Build, ...] = (
    Build((3, 11), "4.2.0", "5.1.0", "blender-4.2-to-5.0"),
    Build((3, 13), "5.1.0", "", "blender-5.1-and-later"),
)
# Provided by every Blender build, so never bundled (a second numpy would shadow Blender's).
PROVIDED_BY_BLENDER = frozenset({"numpy"})


@dataclass(frozen=True)
class Platform:
    """A Blender platform, the wheel tag pip downloads for it and the tag Blender reports there.

    Minimums follow Blender 4.2's: glibc 2.28 on Linux, macOS 11.
    """

    blender: str
    pip_tag: str
    system_tag: str  # sysconfig.get_platform() on that system, "-" -> "_"
    markers: tuple[tuple[str, str], ...]  # sys_platform, platform_system, platform_machine


TARGETS: tuple[Platform, ...] = (
    Platform("linux-x64", "manylinux_2_28_x86_64", "linux_x86_64",
             (("sys_platform", "linux"), ("platform_system", "Linux"),
              ("platform_machine", "x86_64"))),
    Platform("linux-arm64", "manylinux_2_28_aarch64", "linux_aarch64",
             (("sys_platform", "linux"), ("platform_system", "Linux"),
              ("platform_machine", "aarch64"))),
    Platform("windows-x64", "win_amd64", "win_amd64",
             (("sys_platform", "win32"), ("platform_system", "Windows"),
              ("platform_machine", "AMD64"))),
    Platform("windows-arm64", "win_arm64", "win_arm64",
             (("sys_platform", "win32"), ("platform_system", "Windows"),
              ("platform_machine", "ARM64"))),
    Platform("macos-x64", "macosx_11_0_x86_64", "macosx_11_0_x86_64",
             (("sys_platform", "darwin"), ("platform_system", "Darwin"),
              ("platform_machine", "x86_64"))),
    Platform("macos-arm64", "macosx_11_0_arm64", "macosx_11_0_arm64",
             (("sys_platform", "darwin"), ("platform_system", "Darwin"),
              ("platform_machine", "arm64"))),
)


class BuildError(Exception):
    """A problem the user can fix; the message says what and how."""


# --- names, versions and the lock file ------------------------------------------------------


def normalize(name: str) -> str:
    """PEP 503 name, with "_" as wheel filenames spell it: ``PyJWT`` -> ``pyjwt``."""
    return re.sub(r"[-_.]+", "_", name).lower()


def read_lock(path: Path = LOCK_FILE) -> dict[str, str]:
    """Map each pinned package (normalized) to its exact version; anything but ``==`` refused."""
    pins: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", line)
        if match is None:
            raise BuildError(f"{path.name}:{number}: {line!r} is not 'name==version'; "
                             "pin every wheel to one exact version")
        pins[normalize(match[1])] = match[2]
    return pins


def project_version() -> str:
    """The version of record, from ``pyproject.toml``."""
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return str(tomllib.load(fh)["project"]["version"])


_VERSION_SITES = (  # (file, pattern whose group 1 is the version as written there)
    ("blender_addon/blender_manifest.toml", r'(?m)^version = "([^"]*)"$'),
    ("blender_addon/__init__.py", r'"version": \(([0-9, ]+)\)'),
    ("core/kling_elements/__init__.py", r'(?m)^__version__ = "([^"]*)"$'),
)


def _spelled(file: str, version: str) -> str:
    """``0.1.0`` as ``file`` writes it: bl_info takes a tuple of ints."""
    return ", ".join(version.split(".")) if file == "blender_addon/__init__.py" else version


def check_versions() -> str:
    """Return the project version, or refuse if any other copy of it disagrees."""
    version = project_version()
    wrong = []
    for file, pattern in _VERSION_SITES:
        match = re.search(pattern, (ROOT / file).read_text())
        found = match[1] if match else None
        if found != _spelled(file, version):
            wrong.append(f"{file} says {found!r}")
    if wrong:
        raise BuildError(f"pyproject.toml says version {version} but " + "; ".join(wrong)
                         + f". Fix: python scripts/build_extension.py --set-version {version}")
    return version


def set_version(version: str) -> None:
    """Write ``version`` into pyproject.toml and every copy checked by ``check_versions``."""
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise BuildError(f"version {version!r} must be MAJOR.MINOR.PATCH (bl_info takes 3 ints)")
    for file, pattern in (("pyproject.toml", r'(?m)^version = "([^"]*)"$'), *_VERSION_SITES):
        path = ROOT / file
        text = path.read_text()
        match = re.search(pattern, text)
        if match is None:
            raise BuildError(f"{file}: no version line matching {pattern!r}")
        path.write_text(text[:match.start(1)] + _spelled(file, version) + text[match.end(1):])
        print(f"{file}: {version}")


# --- which wheel Blender installs where ------------------------------------------------------


def _python_versions(python_tag: str) -> set[tuple[int, ...]]:
    versions: set[tuple[int, ...]] = set()
    for tag in python_tag.split("."):
        match = re.fullmatch(r"(py|cp)(\d)(\d*)", tag)
        if match:
            versions.add((int(match[2]), int(match[3])) if match[3] else (int(match[2]),))
    return versions


def blender_installs(filename: str, python: tuple[int, int] | None,
                     platform: Platform) -> bool:
    """Whether Blender on ``platform`` with ``python`` would install this wheel.

    A copy of the rule in Blender's ``bl_pkg.bl_extension_ops._extensions_wheel_filter_for_this
    _system`` (4.2.x from some point release on, and 5.x): the platform tag is ``any``, equal,
    or the same architecture (any manylinux / macOS version); the Python tag names this major
    (``py3``) or this minor, or an older minor with the stable ABI (``abi3``). ``python=None``
    is 4.2.0's rule (``_extensions_wheel_filter_for_platform``): the platform part only, and
    no ``universal2`` on macOS.
    """
    parts = filename.removesuffix(".whl").split("-")
    if not 5 <= len(parts) <= 6:
        return False
    python_tag, abi_tag, platform_tag = parts[-3:]
    current = platform.system_tag
    arch = current.rpartition("_")[2] if current.startswith("macosx_") else \
        current.partition("_")[2]
    if platform_tag not in {"any", current}:
        if current.startswith("macosx_"):
            # 4.2.0 knows no universal2: it wants the architecture itself.
            suffixes = ("_" + arch,) if python is None else ("_" + arch, "_universal2")
            if not (platform_tag.startswith("macosx_") and platform_tag.endswith(suffixes)):
                return False
        elif current.startswith("linux_"):
            if not (platform_tag.startswith("manylinux") and platform_tag.endswith("_" + arch)):
                return False
        else:
            return False
    if python is None:
        return True
    stable = "abi3" in abi_tag.split(".")
    for version in _python_versions(python_tag):
        if version == python[:1] or version == python:
            return True
        if len(version) == 2 and stable and version[0] == python[0] and python >= version:
            return True
    return False


def wheel_name_version(filename: str) -> tuple[str, str]:
    name, version = filename.split("-")[:2]
    return normalize(name), version


# --- fetching ----------------------------------------------------------------------------


def _cached(name: str, version: str, python: tuple[int, int], platform: Platform) -> list[Path]:
    return sorted(
        path for path in WHEEL_CACHE.glob("*.whl")
        if wheel_name_version(path.name) == (name, version)
        and blender_installs(path.name, python, platform)
    )


def _pip_download(requirements: Sequence[str], python: tuple[int, int],
                  platform: Platform) -> subprocess.CompletedProcess[str]:
    py = f"{python[0]}{python[1]}"
    return subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--only-binary=:all:", "--dest", str(WHEEL_CACHE),
         "--platform", platform.pip_tag, "--python-version", f"{python[0]}.{python[1]}",
         "--implementation", "cp", "--abi", f"cp{py}", *requirements],
        capture_output=True, text=True, check=False,
    )


def fetch_wheels(pins: dict[str, str], python: tuple[int, int]) -> list[Path]:
    """Every wheel ``python`` needs on the targets, from the cache or pip; one per package."""
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    chosen: set[Path] = set()
    for platform in TARGETS:
        missing = [n for n, v in pins.items() if not _cached(n, v, python, platform)]
        if missing:
            print(f"  downloading for cp{python[0]}{python[1]} {platform.blender}: "
                  + ", ".join(missing), flush=True)
            if _pip_download([f"{n}=={pins[n]}" for n in missing], python,
                             platform).returncode != 0:
                for name in missing:  # one at a time, to name the culprit
                    result = _pip_download([f"{name}=={pins[name]}"], python, platform)
                    if result.returncode != 0:
                        tail = "\n    ".join(result.stderr.strip().splitlines()[-3:])
                        raise BuildError(
                            f"no wheel of {name}=={pins[name]} for CPython "
                            f"{python[0]}.{python[1]} on {platform.blender} (pip platform "
                            f"{platform.pip_tag}).\n    {tail}\nFix: pin a version of "
                            f"{name} that publishes one in {LOCK_FILE.name}, or drop "
                            f"{platform.blender} from TARGETS in {Path(__file__).name}")
        for name, version in pins.items():
            found = _cached(name, version, python, platform)
            if not found:
                raise BuildError(f"pip downloaded {name}=={version} for {platform.blender} "
                                 f"cp{python[0]}{python[1]} but Blender would not install "
                                 f"it there; see {WHEEL_CACHE}")
            # Blender 4.2.0 skips universal2 wheels: prefer the architecture's own.
            chosen.add(min(found, key=lambda p: (p.name.endswith("_universal2.whl"), p.name)))
    return sorted(chosen, key=lambda p: p.name)


def _build_backend() -> Path:
    """A folder holding ``[build-system].requires`` as wheels, fetched once per requirement set.

    The core is then built with ``--no-index`` from it, so a warm rebuild needs no network.
    """
    with (ROOT / "pyproject.toml").open("rb") as fh:
        requires = sorted(tomllib.load(fh)["build-system"]["requires"])
    key = re.sub(r"[^A-Za-z0-9.=<>~!,_-]+", "_", "+".join(requires))
    folder = WHEEL_CACHE / "build-backend" / key
    if not (folder / ".complete").is_file():
        print(f"  downloading the build backend: {', '.join(requires)}", flush=True)
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
             "--only-binary=:all:", "--dest", str(folder), *requires],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise BuildError(f"fetching the build backend {requires} failed:\n"
                             f"{result.stderr.strip()}")
        (folder / ".complete").touch()
    return folder


# Left out of the extension's core wheel: folders of ``core/`` the add-on never imports.
NOT_IN_EXTENSION = (Path("kling_elements") / "sandbox",)


def _skip_for_extension(folder: str, names: list[str]) -> set[str]:
    """``shutil.copytree``'s ignore: build litter anywhere, and ``NOT_IN_EXTENSION``."""
    skipped = set(shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")(folder, names))
    here = Path(folder).relative_to(ROOT / "core")
    return skipped | {name for name in names if here / name in NOT_IN_EXTENSION}


def check_core_wheel(wheel: Path) -> None:
    """The core wheel says it is typed and carries nothing of ``NOT_IN_EXTENSION``."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    if "kling_elements/py.typed" not in names:
        raise BuildError(f"{wheel.name} has no kling_elements/py.typed: type checkers would "
                         "treat the core as untyped; list it in [tool.setuptools.package-data]")
    extra = sorted(n for n in names for left_out in NOT_IN_EXTENSION
                   if n.startswith(f"{left_out.as_posix()}/"))
    if extra:
        raise BuildError(f"{wheel.name} carries {len(extra)} file(s) the extension leaves out, "
                         f"e.g. {extra[0]}")


def build_core_wheel(out_dir: Path, version: str) -> Path:
    """Build ``kling_elements`` for the extension from a clean copy of the sources, so stale
    files never ship, without the folders in ``NOT_IN_EXTENSION``."""
    backend = _build_backend()
    with tempfile.TemporaryDirectory(prefix="kling-core-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, src / name)
        shutil.copytree(ROOT / "core", src / "core", ignore=_skip_for_extension)
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
             "--no-deps", "--no-index", "--find-links", str(backend),
             "--wheel-dir", str(out_dir), str(src)],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise BuildError(f"building the core wheel failed:\n{result.stderr.strip()}")
    wheel = out_dir / f"kling_elements-{version}-py3-none-any.whl"
    if not wheel.is_file():
        raise BuildError(f"expected {wheel.name} in {out_dir}, found "
                         f"{sorted(p.name for p in out_dir.glob('*.whl'))}")
    check_core_wheel(wheel)
    return wheel


# --- checks on the set of wheels ---------------------------------------------------------------


def _marker_env(python: tuple[int, int], platform: Platform) -> dict[str, str]:
    version = f"{python[0]}.{python[1]}"
    return {
        "python_version": version, "python_full_version": f"{version}.0",
        "implementation_name": "cpython", "platform_python_implementation": "CPython",
        "os_name": "nt" if platform.blender.startswith("windows") else "posix",
        "platform_release": "", "platform_version": "", "implementation_version": f"{version}.0",
        "extra": "", **dict(platform.markers),
    }


def _requires(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist()
                    if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        message = email.parser.BytesParser().parsebytes(zf.read(meta), headersonly=True)
    return message.get_all("Requires-Dist") or []


def check_wheel_set(wheels: Iterable[Path], python: tuple[int, int]) -> None:
    """Refuse a set for ``python`` that gives some platform zero or two copies of a package,
    misses a dependency, or makes Blender 4.2.0 install other wheels than later releases."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # every venv with pip has a copy
        from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]

    wheels = list(wheels)
    for platform in TARGETS:
        early = {w.name for w in wheels if blender_installs(w.name, None, platform)}
        later = {w.name for w in wheels if blender_installs(w.name, python, platform)}
        if early != later:
            raise BuildError(
                f"on {platform.blender}, Blender 4.2.0 would install other wheels from the "
                f"CPython {python[0]}.{python[1]} zip than later releases (4.2.0 filters by "
                f"platform only and skips universal2): only 4.2.0: "
                f"{', '.join(sorted(early - later)) or '-'}; only later: "
                f"{', '.join(sorted(later - early)) or '-'}. Fix: give each Python its own zip "
                f"in BUILDS and pin wheels built for one architecture")
        installed: dict[str, list[str]] = {}
        for wheel in wheels:
            if blender_installs(wheel.name, python, platform):
                installed.setdefault(wheel_name_version(wheel.name)[0], []).append(wheel.name)
        where = f"CPython {python[0]}.{python[1]} on {platform.blender}"
        for name, names in installed.items():
            if len(names) > 1:
                raise BuildError(f"{where} would install {len(names)} copies of {name}: "
                                 + ", ".join(names))
        env = _marker_env(python, platform)
        for wheel in wheels:
            if not blender_installs(wheel.name, python, platform):
                continue
            for spec in _requires(wheel):
                req = Requirement(spec)
                if req.marker is not None and not req.marker.evaluate(env):
                    continue
                dep = normalize(req.name)
                if dep not in installed and dep not in PROVIDED_BY_BLENDER:
                    raise BuildError(f"{wheel.name} needs {req} on {where}, which is not "
                                     f"bundled. Fix: pin it in {LOCK_FILE.name}")


# --- staging, Blender's build and validation ---------------------------------------------------


def find_blender_ext(explicit: str | None) -> Path:
    """Blender's extension tool: ``--blender-ext``, else this venv's bpy, else the newest cached."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise BuildError(f"--blender-ext {path}: no such file")
        return path
    here = sorted(Path(sys.prefix).glob(BL_EXT_GLOB))
    if here:
        return here[-1]

    def series(path: Path) -> tuple[int, ...]:
        return tuple(int(p) for p in path.parents[4].name.split("."))

    cached = sorted(BPY_CACHE.glob("bpy-*/" + BL_EXT_GLOB), key=series)
    if not cached:
        raise BuildError(f"Blender's blender_ext.py not found under {BPY_CACHE}/bpy-*: run "
                         "`make test-addon` once (installs the bpy wheels), or pass "
                         "--blender-ext <bpy dir>/<ver>/scripts/addons_core/bl_pkg/cli/"
                         "blender_ext.py")
    return cached[-1]


def _tags_file(blender_ext: Path) -> str:
    """The list of valid tags ``blender --command extension build`` checks against."""
    tags = blender_ext.parents[3] / "modules" / "_bpy_internal" / "extensions" / "tags.py"
    return str(tags) if tags.is_file() else ""


def stage(wheels: Sequence[Path], manifest_text: str) -> None:
    """Lay out build/extension/: the add-on's files, the generated manifest, wheels/."""
    if STAGING_DIR.exists():
        shutil.rmtree(STAGING_DIR)
    shutil.copytree(ADDON_DIR, STAGING_DIR,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*", MANIFEST))
    (STAGING_DIR / "wheels").mkdir()
    for wheel in wheels:
        shutil.copy2(wheel, STAGING_DIR / "wheels" / wheel.name)
    (STAGING_DIR / MANIFEST).write_text(manifest_text)


def generated_manifest(wheels: Sequence[Path], build: Build) -> str:
    """The repo's manifest plus what only the build may write: ``wheels``, ``platforms`` and
    the Blender range of ``build`` (the repo's ``blender_version_min`` is the oldest one's)."""
    source = (ADDON_DIR / MANIFEST).read_text()
    manifest = tomllib.loads(source)
    for key in ("wheels", "platforms", "blender_version_max"):
        if key in manifest:
            raise BuildError(f"blender_addon/{MANIFEST} sets {key!r}; remove it, the build "
                             "writes it from scripts/extension-wheels.txt, TARGETS and BUILDS")
    oldest = min(BUILDS, key=lambda b: _version_tuple(b.blender_min)).blender_min
    if manifest.get("blender_version_min") != oldest:
        raise BuildError(f"blender_addon/{MANIFEST} says blender_version_min = "
                         f"{manifest.get('blender_version_min')!r} but the oldest zip in BUILDS "
                         f"starts at {oldest!r}; make them agree")
    source = re.sub(r'(?m)^blender_version_min = "[^"]*"$',
                    f'blender_version_min = "{build.blender_min}"', source)
    lines = ["", "# Written by scripts/build_extension.py.",
             f"# For Blender's CPython {build.python[0]}.{build.python[1]}."]
    if build.blender_max:
        lines.append(f'blender_version_max = "{build.blender_max}"')
    lines += ["platforms = [" + ", ".join(f'"{p.blender}"' for p in TARGETS) + "]",
              "wheels = ["] + [f'  "./wheels/{w.name}",' for w in wheels] + ["]", ""]
    # Top-level keys must come before the first [table].
    first_table = re.search(r"(?m)^\[", source)
    cut = first_table.start() if first_table else len(source)
    text = source[:cut].rstrip("\n") + "\n" + "\n".join(lines) + "\n" + source[cut:]
    return text


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def blender_ext(tool: Path, *args: str) -> None:
    result = subprocess.run([sys.executable, str(tool), *args],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BuildError(f"Blender's blender_ext.py {args[0]} refused the extension:\n"
                         f"{(result.stdout + result.stderr).strip()}")


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _extension_id() -> str:
    return str(tomllib.loads((ADDON_DIR / MANIFEST).read_text())["id"])


def zip_path(build: Build) -> Path:
    """Where ``build``'s zip goes: ``dist/<id>-<version>-<label>.zip``."""
    return DIST_DIR / f"{_extension_id()}-{project_version()}-{build.label}.zip"


def _remove_stale(build: Build | None) -> None:
    """Drop earlier per-platform parts of ``build``'s zip, or (``None``) the single zip for
    every Python older builds wrote, which Blender 4.2.0 installs wrongly."""
    if build is None:
        stem = f"{_extension_id()}-{project_version()}"
        stale = [DIST_DIR / f"{stem}.zip"] + [
            DIST_DIR / f"{stem}-{p.blender.replace('-', '_')}.zip" for p in TARGETS]
    else:
        stale = list(DIST_DIR.glob(f"{zip_path(build).stem}-*.zip"))
    for path in stale:
        if path.is_file():
            path.unlink()
            print(f"removed stale {_shown(path)}")


def validate(tool: Path, archive: Path) -> None:
    if not archive.is_file():
        raise BuildError(f"{archive} does not exist: run `make extension` first")
    blender_ext(tool, "validate", f"--valid-tags={_tags_file(tool)}", str(archive))
    print(f"valid ({tool.parents[4].name}): {_shown(archive)}")


def build(tool: Path, split_platforms: bool) -> list[Path]:
    """Write every zip in ``BUILDS`` (and their per-platform parts); return the zips."""
    version = check_versions()
    pins = read_lock()
    if PROVIDED_BY_BLENDER & pins.keys():
        raise BuildError(f"{LOCK_FILE.name} pins {sorted(PROVIDED_BY_BLENDER & pins.keys())}, "
                         "which Blender ships; remove the line")
    DIST_DIR.mkdir(exist_ok=True)
    _remove_stale(None)
    tags = f"--valid-tags={_tags_file(tool)}"
    archives = []
    with tempfile.TemporaryDirectory(prefix="kling-wheel-") as tmp:
        core = build_core_wheel(Path(tmp), version)
        for spec in BUILDS:
            span = f"{spec.blender_min} <= Blender" + (f" < {spec.blender_max}"
                                                       if spec.blender_max else "")
            print(f"kling-elements {version} for {span}: CPython "
                  f"{spec.python[0]}.{spec.python[1]} wheels on "
                  + ", ".join(p.blender for p in TARGETS), flush=True)
            wheels = sorted([*fetch_wheels(pins, spec.python), core], key=lambda p: p.name)
            check_wheel_set(wheels, spec.python)
            stage(wheels, generated_manifest(wheels, spec))
            archive = zip_path(spec)
            archive.unlink(missing_ok=True)
            blender_ext(tool, "build", f"--source-dir={STAGING_DIR}",
                        f"--output-filepath={archive}", tags)
            validate(tool, archive)
            _remove_stale(spec)
            if split_platforms:
                blender_ext(tool, "build", f"--source-dir={STAGING_DIR}",
                            f"--output-filepath={archive}", tags, "--split-platforms")
                for part in sorted(DIST_DIR.glob(f"{archive.stem}-*.zip")):
                    validate(tool, part)
            size = archive.stat().st_size / 1e6
            print(f"built {_shown(archive)} ({size:.1f} MB, {len(wheels)} wheels)")
            archives.append(archive)
    return archives


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blender-ext", help="path to Blender's bl_pkg/cli/blender_ext.py")
    parser.add_argument("--split-platforms", action="store_true",
                        help="also write one smaller zip per platform next to each zip")
    parser.add_argument("--validate", nargs="*", metavar="ZIP",
                        help="only validate the ZIPs (default: this version's zips in dist/)")
    parser.add_argument("--set-version", metavar="X.Y.Z",
                        help="write X.Y.Z into pyproject.toml, the manifest, bl_info and the core")
    args = parser.parse_args(argv)
    try:
        if args.set_version:
            set_version(args.set_version)
        elif args.validate is not None:
            tool = find_blender_ext(args.blender_ext)
            for archive in ([Path(z).resolve() for z in args.validate]
                            or [zip_path(b) for b in BUILDS]):
                validate(tool, archive)
        else:
            build(find_blender_ext(args.blender_ext), args.split_platforms)
    except BuildError as exc:
        print(f"build_extension: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
