"""What the user sees: the sidebar panels, the Conform step's drawing and the Preview overlay.

Drawing only reads cheap facts; it never starts work except asking ``overlay_cache`` for a
missing texture.
"""
