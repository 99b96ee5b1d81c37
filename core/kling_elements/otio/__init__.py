"""OpenTimelineIO in and out of the batch: marked clips -> manifest, results -> timeline.

Studios move edits between Resolve, Premiere, Avid and Nuke Studio as OpenTimelineIO. Here
an editor's markers (our ``kling_elements`` metadata namespace, ``markers``) become a batch
manifest (``manifest.to_manifest``), and a finished batch's results come back as new tracks
over their source clips (``results.add_results``). The ``opentimelineio`` package is the
``otio`` extra; it is imported only when these functions run.
"""

from __future__ import annotations

from typing import Any

__all__ = ["require_otio"]


def require_otio() -> Any:
    """The ``opentimelineio`` module, or an ImportError that says how to install it."""
    try:
        import opentimelineio
    except ImportError:
        raise ImportError("OpenTimelineIO is not installed: pip install "
                          "'kling-elements[otio]' (the opentimelineio package)") from None
    return opentimelineio
