"""Work off Blender's main thread: the worker threads and what they run.

The worker (``worker``) runs jobs on its threads and hands their outcome to the main thread;
``session_calls`` and ``task_calls`` are the Kling calls those jobs make, ``conform`` drives
the render child, ``overlay_cache`` prepares mask textures and ``online`` gates every
request. Nothing here may touch ``bpy``: it is not thread-safe, and the main thread reads
what a job needs into plain data before submitting it. No module here imports ``bpy`` nor
a module that does (``tests/addon_pure/test_layout.py`` checks it).
"""
