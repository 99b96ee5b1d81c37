"""Blender operators, one module per step of the panel (session, select, conform, edit,
tasks, long jobs). They read ``bpy`` through ``bridge``, hand slow work to ``work``, and
write answers back through ``bridge`` on the main thread."""
