"""What an install gets: the extras written once, the console entries, and the Blender
extension's core wheel (typed, without the sandbox server the add-on never runs)."""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

from kling_elements.cli import sandbox_main

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_under_test",
                                                  ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def requirements():
    return _script("requirements").requirements


@pytest.fixture(scope="module")
def build():
    return _script("build_extension")


def test_the_requirements_are_the_cores_then_each_extras_once(requirements):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = requirements(["sandbox", "video", "test"])
    core = project["dependencies"]
    assert listed[:len(core)] == core
    extras = project["optional-dependencies"]
    assert set(listed) == {*core, *extras["sandbox"], *extras["video"], *extras["test"]}
    assert len(listed) == len(set(listed))  # av is in sandbox and video: listed once


def test_an_extra_naming_this_projects_extra_is_expanded(requirements):
    dev = requirements(["dev"])
    assert "pytest>=8" in dev and "ruff>=0.5" in dev
    assert not [r for r in dev if r.startswith("kling-elements")]


def test_an_unknown_extra_is_refused_with_the_choices(requirements):
    with pytest.raises(SystemExit, match=r"no extra 'sandbx'.*sandbox"):
        requirements(["sandbx"])


def test_kling_elements_sandbox_is_the_sandbox_command(capsys):
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kling-elements-sandbox"] == "kling_elements.cli:sandbox_main"
    with pytest.raises(SystemExit) as done:
        sandbox_main(["--help"])
    assert done.value.code == 0
    assert "kling-elements sandbox" in capsys.readouterr().out


def _zip(path: Path, *names: str) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name in names:
            zf.writestr(name, "")
    return path


def test_a_core_wheel_with_the_sandbox_or_without_py_typed_is_refused(build, tmp_path):
    good = ("kling_elements/__init__.py", "kling_elements/py.typed",
            "kling_elements/hosting/sandbox.py")  # the client's upload to a sandbox stays
    build.check_core_wheel(_zip(tmp_path / "good.whl", *good))
    with pytest.raises(build.BuildError, match=r"py\.typed"):
        build.check_core_wheel(_zip(tmp_path / "untyped.whl", *good[:1]))
    with pytest.raises(build.BuildError, match=r"kling_elements/sandbox/server\.py"):
        build.check_core_wheel(_zip(tmp_path / "fat.whl", *good,
                                    "kling_elements/sandbox/server.py"))


@pytest.mark.slow
def test_the_extensions_core_wheel_is_typed_and_leaves_the_sandbox_out(build, tmp_path):
    wheel = build.build_core_wheel(tmp_path, build.project_version())
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert "kling_elements/py.typed" in names
    assert "kling_elements/batch/runner.py" in names
    assert "kling_elements/hosting/sandbox.py" in names
    assert not [n for n in names if n.startswith("kling_elements/sandbox/")]
