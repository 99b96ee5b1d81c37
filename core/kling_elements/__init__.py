"""kling-elements: Kling AI Multi-Elements video editing from Python."""

__version__ = "0.1.0"
