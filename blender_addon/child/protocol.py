"""The render child's progress protocol, shared by the child and the job that reads it.

One line each, flushed: ``KLING_PROGRESS <done> <total>`` on stdout after every written
frame, ``KLING_DONE <path>`` on stdout once the file is in place, ``KLING_ERROR <message>``
on stderr on failure. Standard library only: the child loads this file by path.
"""

from __future__ import annotations

PROGRESS = "KLING_PROGRESS"
DONE = "KLING_DONE"
ERROR = "KLING_ERROR"
