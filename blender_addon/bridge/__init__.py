"""Where ``bpy`` data meets plain data (main thread only).

Properties saved in the .blend, preferences, and the modules that read strips, images and
preferences into the plain values ``pure`` and ``work`` take, or write answers back onto
strips. No operators and no drawing here.
"""
