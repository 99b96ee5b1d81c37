"""Which credentials and base URL a client uses: the one precedence rule for the CLI, the
library's ``Client.from_env`` and the Blender add-on's preferences.

``KLINGAI_API_KEY`` (when not blank) wins; else ``KLINGAI_ACCESS_KEY`` with
``KLINGAI_SECRET_KEY``; else what the caller configured (the add-on's preferences). A
``KLINGAI_BASE_URL`` wins over a configured base URL. Environment variables win so that a
farm or a CI job can override a workstation's saved keys without editing them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Credentials", "resolve_credentials"]


@dataclass(frozen=True)
class Credentials:
    """Keys and base URL as plain strings (``""``: not given); ``repr`` hides the keys."""

    base_url: str = ""
    api_key: str = ""
    access_key: str = ""
    secret_key: str = ""

    def __repr__(self) -> str:
        kind = "api_key" if self.api_key.strip() else "keys" if self.access_key else "none"
        return f"Credentials(base_url={self.base_url!r}, kind={kind!r})"


def resolve_credentials(environ: Mapping[str, str] | None = None,
                        configured: Credentials | None = None) -> Credentials:
    """The credentials to use: the environment's, else ``configured``'s (see the module).

    With neither complete, the environment's partial keys are returned as they are, so the
    client refuses them with its "no credentials" advice.
    """
    env = os.environ if environ is None else environ
    configured = configured or Credentials()
    base_url = env.get("KLINGAI_BASE_URL") or configured.base_url
    api_key = env.get("KLINGAI_API_KEY") or ""
    if api_key.strip():
        return Credentials(base_url, api_key=api_key)
    access, secret = env.get("KLINGAI_ACCESS_KEY") or "", env.get("KLINGAI_SECRET_KEY") or ""
    if access and secret:
        return Credentials(base_url, access_key=access, secret_key=secret)
    if configured.api_key.strip() or (configured.access_key and configured.secret_key):
        return Credentials(base_url, configured.api_key, configured.access_key,
                           configured.secret_key)
    return Credentials(base_url, access_key=access, secret_key=secret)
