"""scripts/build_extension.py without Blender: which wheels go in which zip, and its manifest.

Blender 4.2.0 installs every bundled wheel whose platform matches, whatever its Python (later
releases also match the Python), and knows no macOS universal2; so a zip must hold only its
own Python's wheels, one per platform, and declare the Blender range that runs that Python.
"""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def build():
    spec = importlib.util.spec_from_file_location(
        "build_extension_under_test", ROOT / "scripts" / "build_extension.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def wheel(folder: Path, filename: str, requires: tuple[str, ...] = ()) -> Path:
    """A wheel file holding just the METADATA the build reads."""
    name, version = filename.split("-")[:2]
    path = folder / filename
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}-{version}.dist-info/METADATA",
                    f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                    + "".join(f"Requires-Dist: {r}\n" for r in requires))
    return path


PLATFORM_TAGS = ("manylinux_2_28_x86_64", "manylinux_2_28_aarch64", "win_amd64", "win_arm64",
                 "macosx_10_10_x86_64", "macosx_11_0_arm64")


def pillow_set(folder: Path, python: str) -> list[Path]:
    return [wheel(folder, f"pillow-13.0.0-{python}-{python}-{tag}.whl") for tag in PLATFORM_TAGS]


def test_a_zip_per_python_meeting_at_5_1(build):
    ranges = [(b.python, b.blender_min, b.blender_max) for b in build.BUILDS]
    assert ranges == [((3, 11), "4.2.0", "5.1.0"), ((3, 13), "5.1.0", "")]
    assert len({b.label for b in build.BUILDS}) == len(build.BUILDS)


def test_one_pythons_wheels_pass(build, tmp_path):
    wheels = [*pillow_set(tmp_path, "cp311"),
              wheel(tmp_path, "httpx-0.28.1-py3-none-any.whl", ("idna",)),
              wheel(tmp_path, "idna-3.20-py3-none-any.whl")]
    build.check_wheel_set(wheels, (3, 11))


def test_both_pythons_in_one_zip_are_refused_for_4_2_0(build, tmp_path):
    """What broke 4.2.0: its installer took the cp313 Pillow for the cp311 Blender."""
    wheels = pillow_set(tmp_path, "cp311") + pillow_set(tmp_path, "cp313")
    with pytest.raises(build.BuildError, match=r"4\.2\.0 would install other wheels.*"
                                               r"only 4\.2\.0: pillow-13\.0\.0-cp313"):
        build.check_wheel_set(wheels, (3, 11))


def test_a_universal2_wheel_is_refused_as_4_2_0_skips_it(build, tmp_path):
    wheels = [p for p in pillow_set(tmp_path, "cp311") if "macosx_10_10" not in p.name]
    wheels.append(wheel(tmp_path, "pillow-13.0.0-cp311-cp311-macosx_10_10_universal2.whl"))
    with pytest.raises(build.BuildError, match=r"macos-x64.*only later: .*universal2"):
        build.check_wheel_set(wheels, (3, 11))


def test_4_2_0_rule_ignores_the_python(build):
    linux = build.TARGETS[0]
    name = "pillow-13.0.0-cp313-cp313-manylinux_2_28_x86_64.whl"
    assert build.blender_installs(name, None, linux)
    assert not build.blender_installs(name, (3, 11), linux)
    assert build.blender_installs(name, (3, 13), linux)


@pytest.mark.parametrize("index", [0, 1])
def test_each_manifest_declares_its_blender_range(build, tmp_path, index):
    spec = build.BUILDS[index]
    wheels = [tmp_path / "kling_elements-0.1.0-py3-none-any.whl"]
    manifest = tomllib.loads(build.generated_manifest(wheels, spec))
    assert manifest["blender_version_min"] == spec.blender_min
    assert manifest.get("blender_version_max", "") == spec.blender_max
    assert manifest["wheels"] == ["./wheels/kling_elements-0.1.0-py3-none-any.whl"]
    assert manifest["permissions"]  # the [tables] after the generated keys survive
    assert build.zip_path(spec).name == f"kling_elements_vse-0.1.0-{spec.label}.zip"


def test_a_max_in_the_source_manifest_is_refused(build, tmp_path, monkeypatch):
    addon = tmp_path / "blender_addon"
    addon.mkdir()
    text = (ROOT / "blender_addon" / "blender_manifest.toml").read_text()
    (addon / "blender_manifest.toml").write_text(
        text.replace('blender_version_min = "4.2.0"',
                     'blender_version_min = "4.2.0"\nblender_version_max = "6.0.0"'))
    monkeypatch.setattr(build, "ADDON_DIR", addon)
    with pytest.raises(build.BuildError, match=r"blender_version_max.*remove it"):
        build.generated_manifest([], build.BUILDS[0])


def test_the_staged_addon_holds_every_module_of_every_role_folder(build, tmp_path, monkeypatch):
    """The add-on is laid out in subfolders (pure/, work/, child/, ...): the zip's source is
    the whole tree, without caches, and the generated manifest instead of the repo's."""
    staging = tmp_path / "extension"
    monkeypatch.setattr(build, "STAGING_DIR", staging)
    (ROOT / "blender_addon" / "pure" / "__pycache__").mkdir(exist_ok=True)
    build.stage([], "generated = true\n")
    addon = ROOT / "blender_addon"
    wanted = {p.relative_to(addon) for p in addon.rglob("*.py") if "__pycache__" not in p.parts}
    staged = {p.relative_to(staging) for p in staging.rglob("*") if p.is_file()}
    assert {Path("child/conform_render.py"), Path("pure/mapping.py"), Path("compat.py")} <= wanted
    assert staged == wanted | {Path(build.MANIFEST)}
    assert (staging / build.MANIFEST).read_text() == "generated = true\n"
