"""The built extension zip (``make extension``) installs, runs on its bundled wheels, uninstalls.

The install runs in a child interpreter of this bpy venv with a clean environment: a fresh
HOME (so a fresh ``user_default`` repository), no PYTHONPATH (so ``core/`` is not importable),
and no dev copy of the add-on enabled (the session's ``addon`` fixture registers the same
operator idnames). The venv's own site-packages also holds httpx, pillow and friends, which a
real Blender does not: the child refuses any new import from there except numpy, so the
extension passes only if its wheels are complete.
"""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
MARKER = "EXTENSION-INSTALL-OK"


def built_zip() -> Path:
    manifest = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text())
    with (ROOT / "pyproject.toml").open("rb") as fh:
        version = tomllib.load(fh)["project"]["version"]
    return ROOT / "dist" / f"{manifest['id']}-{version}.zip"


def bundled_top_level(archive: Path) -> dict[str, list[str]]:
    """Each wheel in the zip -> the importable top-level names its RECORD installs."""
    names: dict[str, list[str]] = {}
    with zipfile.ZipFile(archive) as outer:
        for member in outer.namelist():
            if not member.endswith(".whl"):
                continue
            with zipfile.ZipFile(io.BytesIO(outer.read(member))) as wheel:
                top = {path.split("/", 1)[0] for path in wheel.namelist()}
            dist = member.rsplit("/", 1)[-1].split("-")[0]
            names[dist] = sorted(
                name.removesuffix(".py") for name in top
                if not name.endswith((".dist-info", ".data"))
                and "." not in name.removesuffix(".py")  # e.g. pillow.libs: not importable
            )
    return names


@pytest.fixture(scope="module")
def archive() -> Path:
    path = built_zip()
    if not path.is_file():
        pytest.skip(f"{path.relative_to(ROOT)} not built: run `make extension`")
    return path


def test_zip_bundles_core_and_dependencies_but_not_numpy(archive):
    manifest = tomllib.loads(zipfile.ZipFile(archive).read("blender_manifest.toml").decode())
    wheels = [w.rsplit("/", 1)[-1] for w in manifest["wheels"]]
    dists = {w.split("-")[0].lower() for w in wheels}
    assert f"kling_elements-{manifest['version']}-py3-none-any.whl" in wheels
    assert {"httpx", "pyjwt", "pillow"} <= dists
    assert "numpy" not in dists, "Blender ships numpy; a bundled copy would shadow it"
    assert {"windows-x64", "macos-arm64", "macos-x64", "linux-x64"} <= set(manifest["platforms"])
    for python in ("cp311", "cp313"):  # Blender 4.2-5.0, Blender 5.1+
        assert any(w.startswith("pillow-") and f"-{python}-" in w for w in wheels), python
    assert set(manifest["permissions"]) == {"network", "files"}


def load_build_script():
    spec = importlib.util.spec_from_file_location(
        "build_extension", ROOT / "scripts" / "build_extension.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


SAMPLE_WHEELS = [  # tags seen in the wild, and near misses
    "a-1-py3-none-any.whl", "a-1-py2.py3-none-any.whl", "a-1-cp311-cp311-win_amd64.whl",
    "a-1-cp313-cp313-win_amd64.whl", "a-1-cp310-abi3-win_amd64.whl",
    "a-1-cp312-abi3-win_amd64.whl", "a-1-cp311-cp311-win_arm64.whl", "a-1-cp311-cp311-win32.whl",
    "a-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "a-1-cp311-cp311-manylinux_2_28_aarch64.whl", "a-1-cp311-cp311-musllinux_1_2_x86_64.whl",
    "a-1-cp311-cp311-macosx_10_9_x86_64.whl", "a-1-cp311-cp311-macosx_11_0_arm64.whl",
    "a-1-cp311-cp311-macosx_10_9_universal2.whl", "a-1-1build-cp311-cp311-linux_x86_64.whl",
]


def test_wheel_rule_is_blenders_own(archive, monkeypatch):
    """The build's copy of Blender's wheel filter agrees with Blender's, on every platform
    (Blender's function reads the platform from sysconfig; the Python is this one)."""
    import sysconfig

    from bl_pkg.bl_extension_ops import _extensions_wheel_filter_for_this_system as blenders

    build = load_build_script()
    names = SAMPLE_WHEELS + [w.rsplit("/", 1)[-1] for w in tomllib.loads(
        zipfile.ZipFile(archive).read("blender_manifest.toml").decode())["wheels"]]
    python = sys.version_info[:2]
    for platform in build.TARGETS:
        monkeypatch.setattr(sysconfig, "get_platform",
                            lambda tag=platform.system_tag: tag.replace("_", "-", 1))
        expected = set(blenders(names))
        ours = {n for n in names if build.blender_installs(n, python, platform)}
        assert ours == expected, platform.blender


CHILD = r'''
import importlib.machinery, json, os, shutil, sys, sysconfig, traceback

archive, pkg_id, modules = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
import bpy  # noqa: E402

venv_site = os.path.realpath(sysconfig.get_paths()["purelib"])
refused = []


class OnlyBlendersOwn:
    """New top-level imports may not come from the venv's site-packages, except numpy (Blender
    ships it); elsewhere on sys.path (stdlib, Blender's scripts, the extension's wheels) is fine."""

    def find_spec(self, name, path=None, target=None):
        if path is not None or name == "numpy":
            return None
        elsewhere = [p for p in sys.path if os.path.realpath(p or ".") != venv_site]
        spec = importlib.machinery.PathFinder.find_spec(name, elsewhere)
        if spec is None and importlib.machinery.PathFinder.find_spec(name, [venv_site]):
            refused.append(name)
            raise ModuleNotFoundError(f"{name} exists only in the bpy venv", name=name)
        return spec


already = sorted(set(sum(modules.values(), [])) & set(sys.modules))
assert not already, f"imported before the extension was installed: {already}"
sys.meta_path.insert(sys.meta_path.index(importlib.machinery.PathFinder), OnlyBlendersOwn())

module = f"bl_ext.user_default.{pkg_id}"
try:
    result = bpy.ops.extensions.package_install_files(
        filepath=archive, repo="user_default", enable_on_install=True)
    assert result == {"FINISHED"}, result
    assert module in bpy.context.preferences.addons, "installed but not enabled"
    assert bpy.context.preferences.addons[module].preferences is not None

    ext_root = bpy.utils.user_resource("EXTENSIONS")
    site = os.path.join(ext_root, ".local", "lib",
                        "python{}.{}".format(*sys.version_info[:2]), "site-packages")
    for dist, names in modules.items():
        for name in names:
            origin = __import__(name).__file__
            assert origin.startswith(site + os.sep), f"{name} ({dist}) came from {origin}"

    ops = [c for c in bpy.types.Operator.__subclasses__()
           if getattr(c, "bl_idname", "").startswith("kling.")]
    assert ops and all(c.is_registered for c in ops), "no kling.* operator registered"
    assert all(c.__module__.startswith(module + ".") for c in ops), [c.__module__ for c in ops]
    panels = [c for c in bpy.types.Panel.__subclasses__() if c.__module__.startswith(module)]
    assert panels and all(c.is_registered for c in panels), "no panel registered"

    result = bpy.ops.extensions.package_uninstall(
        repo_directory=os.path.join(ext_root, "user_default"), pkg_id=pkg_id)
    assert result == {"FINISHED"}, result
    assert module not in bpy.context.preferences.addons, "still enabled after uninstall"
    assert not any(c.is_registered for c in ops + panels), "classes left registered"
    assert not os.path.exists(os.path.join(ext_root, "user_default", pkg_id))
    assert not os.path.exists(os.path.join(site, "kling_elements")), "wheels left installed"
    print("{} {}".format("@MARKER@", json.dumps({
        "operators": len(ops), "panels": len(panels), "refused": sorted(set(refused))})))
    code = 0
except BaseException:
    traceback.print_exc()
    code = 1
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)  # bpy 4.2 segfaults at exit once a bpy.app.timers callback was registered
'''.replace("@MARKER@", MARKER)


def test_installs_from_disk_enables_and_uninstalls(archive, tmp_path):
    import json

    manifest = tomllib.loads(zipfile.ZipFile(archive).read("blender_manifest.toml").decode())
    env = {"HOME": str(tmp_path), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "TMPDIR": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(archive), manifest["id"],
         json.dumps(bundled_top_level(archive))],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith(MARKER)]
    assert run.returncode == 0 and lines, (
        f"exit {run.returncode}\n--- stdout\n{run.stdout[-4000:]}\n--- stderr\n"
        f"{run.stderr[-4000:]}")
    report = json.loads(lines[0][len(MARKER):])
    assert report["operators"] > 0 and report["panels"] > 0
