"""Scripts that run in a Blender process of their own, started by the add-on; never imported.

The child is a ``--factory-startup`` Blender: the add-on's package and its wheels are not on
its ``sys.path``. A script here imports ``bpy`` and the standard library only, and loads
the add-on's ``compat`` (and ``protocol``) by file path (``load_sibling``).
"""
