"""The add-on's layout rule, checked on the source with ``ast`` (no import, no Blender).

``blender_addon/`` is laid out by role (see ``docs/addon-layout.md``): ``pure/`` and
``work/`` never import ``bpy`` or any Blender module, directly, inside a function, or
through another add-on module that does; ``child/`` runs in a Blender process of its own
and imports no add-on module; modules import no private name from a sibling; only
``compat`` reads ``bpy.app.version``; and the import graph has no cycle. Every import
statement counts, wherever it stands: one inside a function runs as surely as one at the
top, only later.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ADDON = Path(__file__).resolve().parents[2] / "blender_addon"
PACKAGE = "blender_addon"
# Modules that exist only inside Blender (its Python API and the modules it bundles).
BLENDER_ONLY = frozenset({
    "bpy", "bpy_extras", "bpy_types", "gpu", "gpu_extras", "mathutils", "bmesh", "bl_math",
    "blf", "aud", "imbuf", "idprop", "freestyle", "addon_utils", "bl_ui", "bl_operators",
    "bl_pkg", "_bpy",
})
NO_BLENDER = ("pure", "work")  # subpackages that must not reach a Blender module
ROLES = frozenset({"pure", "work", "child", "bridge", "ops", "ui"})
TOP_LEVEL = frozenset({"__init__", "compat"})  # registration, and every version difference


@dataclass
class Module:
    name: str  # dotted, e.g. "blender_addon.work.worker"
    path: Path
    blender: list[str] = field(default_factory=list)  # Blender modules imported directly
    imports: set[str] = field(default_factory=set)  # add-on modules imported
    private: list[str] = field(default_factory=list)  # "_name from module" crossings
    version_checks: list[int] = field(default_factory=list)  # lines reading bpy.app.version


def _module_name(root: Path, path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: Module, node: ast.ImportFrom) -> str:
    package = module.name if module.path.name == "__init__.py" else module.name.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def scan(root: Path) -> dict[str, Module]:
    """Every module under ``root`` with what it imports (add-on and Blender modules)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        name = _module_name(root, path)
        modules[name] = Module(name, path)
    for module in modules.values():
        tree = ast.parse(module.path.read_text(), str(module.path))
        bound: dict[str, str] = {}  # local name -> add-on module it is bound to
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    top = alias.name.partition(".")[0]
                    if top in BLENDER_ONLY:
                        module.blender.append(alias.name)
                    elif top == PACKAGE:
                        module.imports.add(alias.name)
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    top = (node.module or "").partition(".")[0]
                    if top in BLENDER_ONLY:
                        module.blender.append(node.module or "")
                    if top != PACKAGE:
                        continue
                    source = node.module or ""
                else:
                    source = _resolve(module, node)
                for alias in node.names:
                    if f"{source}.{alias.name}" in modules:  # a submodule: `from . import x`
                        module.imports.add(f"{source}.{alias.name}")
                        bound[alias.asname or alias.name] = f"{source}.{alias.name}"
                    else:
                        module.imports.add(source)
                        if alias.name.startswith("_") and not alias.name.startswith("__"):
                            module.private.append(f"{alias.name} from {source}")
        module.version_checks = sorted(
            node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr.startswith("version")
            and isinstance(node.value, ast.Attribute) and node.value.attr == "app")
        for node in ast.walk(tree):  # module._private through a module imported by name
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in bound and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                module.private.append(f"{node.attr} of {bound[node.value.id]}")
    for module in modules.values():  # importing a.b.c runs a.b's __init__ first
        for name in list(module.imports):
            parent = name.rpartition(".")[0]
            while parent.count(".") >= 1:  # not the root: in Blender it is already loaded
                if parent != module.name:
                    module.imports.add(parent)
                parent = parent.rpartition(".")[0]
        module.imports &= modules.keys()
        module.imports.discard(module.name)
    return modules


def blender_paths(modules: dict[str, Module], start: str) -> list[str]:
    """Each import chain from ``start`` that ends in a Blender module, e.g.
    ``work.x -> bridge.y -> bpy``; empty when none does."""
    found = []
    seen = {start}
    stack = [[start]]
    while stack:
        chain = stack.pop()
        module = modules[chain[-1]]
        found += [" -> ".join([*chain, name]) for name in module.blender]
        for name in sorted(module.imports - seen):
            seen.add(name)
            stack.append([*chain, name])
    return found


def cycles(modules: dict[str, Module]) -> list[list[str]]:
    """The import cycles among ``modules`` (one chain per cycle found by a depth-first walk)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for nxt in sorted(modules[name].imports):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt):], name, nxt] if nxt in path
                             else [name, nxt])
            elif nxt not in state:
                visit(nxt, [*path, name])
        state[name] = 2

    for name in sorted(modules):
        if name not in state:
            visit(name, [])
    return found


def layout_problems(root: Path) -> list[str]:
    """Every breach of the layout rule under ``root``, as sentences naming the modules."""
    modules = scan(root)
    problems = []
    for name, module in sorted(modules.items()):
        parts = name.split(".")
        role = parts[1] if len(parts) > 1 else ""
        if len(parts) == 2 and module.path.name != "__init__.py" and role not in TOP_LEVEL:
            problems.append(f"{name} sits at the top of the add-on: move it into one of "
                            f"{sorted(ROLES)}")
        if role in NO_BLENDER:
            problems += [f"{name} reaches Blender ({chain}): {role}/ must run without bpy"
                         for chain in blender_paths(modules, name)]
        if role == "child" and module.imports:
            problems.append(f"{name} imports {sorted(module.imports)}: the render child has "
                            "no add-on package on its path; load files by path")
        problems += [f"{name} imports the private {what}: make it public or move it"
                     for what in module.private]
        if module.version_checks and name != f"{PACKAGE}.compat":
            problems.append(f"{name} reads bpy.app.version (line "
                            f"{', '.join(map(str, module.version_checks))}): every Blender "
                            "version difference goes in compat.py")
    problems += ["import cycle: " + " -> ".join(cycle) for cycle in cycles(modules)]
    return problems


def test_the_addon_keeps_its_layout_rule():
    assert layout_problems(ADDON) == []


def test_every_role_folder_exists_and_says_its_rule():
    for role in ROLES:
        doc = ast.get_docstring(ast.parse((ADDON / role / "__init__.py").read_text()))
        assert doc, f"blender_addon/{role}/__init__.py states no rule"


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / PACKAGE
    for name, text in {"__init__.py": "import bpy\n", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for role in ROLES:
        (root / role).mkdir(exist_ok=True)
        (root / role / "__init__.py").write_text('"""Rule."""\n')
    return root


@pytest.mark.parametrize(("files", "expected"), [
    ({"pure/a.py": "import bpy\n"}, "blender_addon.pure.a reaches Blender (blender_addon.pure.a"
                                    " -> bpy)"),
    ({"work/a.py": "def f():\n    from bpy.types import Operator\n"},
     "blender_addon.work.a reaches Blender (blender_addon.work.a -> bpy.types)"),
    ({"work/a.py": "from ..bridge import b\n", "bridge/b.py": "import gpu\n"},
     "blender_addon.work.a reaches Blender (blender_addon.work.a -> blender_addon.bridge.b"
     " -> gpu)"),
    ({"pure/a.py": "from .. import compat\n", "compat.py": "import bpy\n"},
     "blender_addon.pure.a reaches Blender (blender_addon.pure.a -> blender_addon.compat"
     " -> bpy)"),
    ({"ops/a.py": "from .b import x\n", "ops/b.py": "from .a import y\n"},
     "import cycle: blender_addon.ops.a -> blender_addon.ops.b -> blender_addon.ops.a"),
    ({"ops/a.py": "from ..bridge.b import _hidden\n", "bridge/b.py": "_hidden = 1\n"},
     "blender_addon.ops.a imports the private _hidden from blender_addon.bridge.b"),
    ({"ops/a.py": "from ..bridge import b\nb._hidden()\n", "bridge/b.py": ""},
     "blender_addon.ops.a imports the private _hidden of blender_addon.bridge.b"),
    ({"child/r.py": "from .. import compat\n", "compat.py": ""},
     "blender_addon.child.r imports ['blender_addon.compat']"),
    ({"helpers.py": ""}, "blender_addon.helpers sits at the top of the add-on"),
    ({"ui/a.py": "import bpy\nNEW = bpy.app.version >= (4, 1, 0)\n"},
     "blender_addon.ui.a reads bpy.app.version (line 2)"),
])
def test_each_kind_of_breach_is_reported(tmp_path, files, expected):
    problems = layout_problems(_tree(tmp_path, files))
    assert any(p.startswith(expected) for p in problems), problems


def test_a_clean_tree_passes(tmp_path):
    root = _tree(tmp_path, {
        "compat.py": "import bpy\nNEW = bpy.app.version >= (4, 1, 0)\n",
        "pure/a.py": "import numpy\nfrom . import b\n",
        "pure/b.py": "from kling_elements import rle\n",
        "work/c.py": "from ..pure import a\nfrom ..pure.b import rle\n",
        "bridge/d.py": "import bpy\nfrom .. import compat\nfrom ..work import c\n",
        "ops/e.py": "from ..bridge import d\n",
    })
    assert layout_problems(root) == []
