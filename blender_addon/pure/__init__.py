"""Pure logic: plain data in, plain data out. No ``bpy``, no threads of its own.

Everything here is unit-tested with plain pytest (``tests/addon_pure``). A module here may
import the core, the standard library, numpy and other ``pure`` modules, never ``bpy`` nor
a module that does (``tests/addon_pure/test_layout.py`` checks it).
"""
