"""Connection settings as plain data, so the worker thread never reads ``bpy``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ClientSettings"]


@dataclass(frozen=True)
class ClientSettings:
    """What the worker needs to build a client; ``repr`` hides the keys."""

    base_url: str
    access_key: str = ""
    secret_key: str = ""
    api_key: str = ""

    def __repr__(self) -> str:
        return f"ClientSettings(base_url={self.base_url!r})"
