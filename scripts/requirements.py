"""Print the requirements of the core and of the named extras, one per line, from pyproject.toml.

The extras are written once, in ``pyproject.toml``; the Makefile installs the add-on's test
dependencies into each Blender Python (``bpy`` venv) with this list instead of a copy.
An extra may name another extra of this project (``kling-elements[test]``): its
requirements are listed in its place. Each requirement is printed once, in order.

Usage: python scripts/requirements.py [EXTRA ...]   (needs Python >= 3.11 for tomllib)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def requirements(extras: list[str], pyproject: Path = PYPROJECT) -> list[str]:
    """The core's dependencies, then each extra's, with this project's own extras expanded.

    Raises ``SystemExit`` naming an extra that ``pyproject.toml`` does not define.
    """
    project = tomllib.loads(pyproject.read_text())["project"]
    name = project["name"]
    optional = project.get("optional-dependencies", {})
    own = re.compile(rf"^{re.escape(name)}\[([^\]]+)\]$")
    listed: list[str] = []

    def add(requirement: str, seen: frozenset[str]) -> None:
        match = own.match(requirement.replace(" ", ""))
        if match is None:
            if requirement not in listed:
                listed.append(requirement)
            return
        for extra in match.group(1).split(","):
            expand(extra.strip(), seen)

    def expand(extra: str, seen: frozenset[str]) -> None:
        if extra not in optional:
            raise SystemExit(f"{pyproject.name} defines no extra {extra!r}: "
                             f"choose from {', '.join(sorted(optional))}")
        if extra in seen:
            return
        for requirement in optional[extra]:
            add(requirement, seen | {extra})

    for requirement in project.get("dependencies", []):
        add(requirement, frozenset())
    for extra in extras:
        expand(extra, frozenset())
    return listed


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1:])))
