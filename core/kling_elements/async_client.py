"""The asynchronous client: the same calls and the same rules as :class:`~kling_elements.Client`
on ``httpx.AsyncClient``, for services that embed the core (a web backend, an async farm
worker).

Every rule (what is sent, retries by business code, never paying twice, session restores,
the poll schedule, validation before anything is sent) is the shared flows of
``kling_elements.api``; only the I/O loop differs (``api.drivers.AsyncDriver``). A result
download runs the sync resumable download (``kling_elements.download``) in a worker
thread, so the event loop never blocks on disk or network. Use one client per event loop.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from .api.drivers import AsyncDriver
from .api.sessions import RestoreReport
from .api.tasks import TaskFlows
from .client import account_params, checked_base_url, make_auth, poll_plan
from .cost import Cost
from .credentials import resolve_credentials
from .download import ProgressCallback
from .download import download as _download
from .errors import KlingError
from .models import AccountCosts, InitResult, PreviewResult, SelectionResult, Task
from .selection import SelectionState

if TYPE_CHECKING:
    from .callbacks import TaskInbox

__all__ = ["AsyncClient"]


class AsyncClient(TaskFlows, AsyncDriver):
    """``Client``'s API with ``async`` methods; the arguments and guarantees are the same
    (see :class:`kling_elements.Client`), except that ``sleep`` is a coroutine function,
    ``transport`` an ``httpx.AsyncBaseTransport`` and ``before_request`` is awaited when it
    returns an awaitable. ``cancel`` (``submit_task``) is read after each wait."""

    def __init__(
        self,
        access_key: str | None = None,
        secret_key: str | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 4,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_retry: Callable[[KlingError, float], None] | None = None,
        before_request: Callable[[httpx.Request], Any] | None = None,
        auto_restore: bool = True,
        on_restore: Callable[[RestoreReport], None] | None = None,
    ) -> None:
        self._auth = make_auth(access_key, secret_key, api_key)
        self.base_url = checked_base_url(base_url)
        self.max_retries = max_retries
        self._timeout = timeout
        self._sleep = sleep
        self._clock = clock
        self.on_retry = on_retry
        self.auto_restore = auto_restore
        self.on_restore = on_restore
        self._before_request = before_request
        self._account_lock = asyncio.Lock()
        self._account_next = -float("inf")
        self._rng = rng or random.Random()
        hooks = {"request": [self._hook]} if before_request is not None else None
        try:
            self._http = httpx.AsyncClient(
                base_url=self.base_url,
                auth=self._auth,
                timeout=httpx.Timeout(timeout),
                transport=transport,
                headers={"User-Agent": "kling-elements/0.1"},
                event_hooks=hooks,
            )
        except httpx.InvalidURL as exc:
            raise ValueError(f"base URL {self.base_url!r} is not a valid URL: {exc}") from None
        self._files: httpx.Client | None = None
        self.sessions: dict[str, SelectionState] = {}

    async def _hook(self, request: httpx.Request) -> None:
        assert self._before_request is not None
        outcome = self._before_request(request)
        if asyncio.iscoroutine(outcome) or isinstance(outcome, asyncio.Future):
            await outcome

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **kwargs: Any) -> AsyncClient:
        """Credentials and base URL from ``KLINGAI_*`` variables (API key wins over JWT keys)."""
        chosen = resolve_credentials(environ)
        kwargs.setdefault("base_url", chosen.base_url or None)
        if chosen.api_key:
            return cls(api_key=chosen.api_key, **kwargs)
        return cls(chosen.access_key or None, chosen.secret_key or None, **kwargs)

    def __repr__(self) -> str:
        return f"AsyncClient(base_url={self.base_url!r}, auth={self._auth!r})"

    @property
    def http(self) -> httpx.AsyncClient:
        """The authenticated HTTP client, for extensions."""
        return self._http

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._files is not None:
            self._files.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- selection (see Client for each call's guarantees) ----------------------------------

    async def init_selection(
        self, *, video_url: str | None = None, video_id: str | None = None
    ) -> InitResult:
        """Start a 24 h selection session on a video (see ``Client.init_selection``)."""
        return await self._run(self._init_selection(video_url, video_id))

    async def restore(self, session: str | SelectionState, *, reason: str = "asked for"
                      ) -> SelectionState:
        """Move a session's points to a new session on the same video (``Client.restore``)."""
        return await self._run(self._restore(session, reason))

    async def add_selection(
        self, session_id: str, frame_index: int, points: Sequence[object]
    ) -> SelectionResult:
        """Mark points on one frame; never added twice (``Client.add_selection``)."""
        return await self._run(
            self._selection_call("add-selection", session_id, frame_index, points))

    async def delete_selection(
        self, session_id: str, frame_index: int, points: Sequence[object]
    ) -> SelectionResult:
        """Remove points added earlier, bit-identical (``Client.delete_selection``)."""
        return await self._run(
            self._selection_call("delete-selection", session_id, frame_index, points))

    async def clear_selection(self, session_id: str) -> Cost:
        """Remove every point of the session (``Client.clear_selection``)."""
        return await self._run(self._clear_selection(session_id))

    async def preview_selection(self, session_id: str) -> PreviewResult:
        """The tracked-mask preview of the session (``Client.preview_selection``)."""
        return await self._run(self._preview_selection(session_id))

    # -- tasks -----------------------------------------------------------------------------

    async def create_task(self, **kwargs: Any) -> Task:
        """Create the edit task, never paying twice (``Client.create_task``)."""
        return await self.submit_task(self.build_task_body(**kwargs))

    async def submit_task(self, body: dict[str, Any], *, slot_wait_s: float = 0.0,
                          cancel: threading.Event | None = None) -> Task:
        """POST a body from ``build_task_body`` with the never-pay-twice protocol
        (``Client.submit_task``)."""
        return await self._run(self._submit_task(body, slot_wait_s, cancel))

    async def get_task(self, task_id: str) -> Task:
        """One task by its ``task_id`` or the caller's ``external_task_id``."""
        return await self._run(self._get_task(task_id))

    async def list_tasks(self, page: int = 1, page_size: int = 30) -> list[Task]:
        """The account's tasks, newest first, one page at a time."""
        return await self._run(self._list_tasks(page, page_size))

    async def account_costs(
        self,
        start: datetime | float | None = None,
        end: datetime | float | None = None,
        *,
        resource_pack_name: str | None = None,
    ) -> AccountCosts:
        """The account's resource packs, one query a second (``Client.account_costs``)."""
        params = account_params(start, end, resource_pack_name)
        async with self._account_lock:
            return await self._run(self._account_costs(params))

    async def wait(
        self,
        task_id: str,
        timeout: float = 900.0,
        poll_interval: float | None = None,
        on_update: Callable[[Task], None] | None = None,
        inbox: TaskInbox | None = None,
    ) -> Task:
        """Wait until the task ends; return it on success (``Client.wait``)."""
        return await self._run(self._wait(task_id, timeout, poll_interval, on_update, inbox,
                                          poll_plan()))

    async def download(
        self,
        url: str,
        dest_path: str | os.PathLike,
        on_progress: ProgressCallback | None = None,
        *,
        overwrite: bool = False,
    ) -> Path:
        """Stream a result file to ``dest_path`` atomically, resuming after broken connections
        (``Client.download``), in a worker thread."""
        if self._files is None:
            hooks = ({"request": [self._before_request]}
                     if self._before_request is not None else None)
            self._files = httpx.Client(follow_redirects=True,
                                       timeout=httpx.Timeout(self._timeout), event_hooks=hooks)
        return await asyncio.to_thread(
            _download, url, dest_path, overwrite=overwrite, on_progress=on_progress,
            http=self._files, max_retries=self.max_retries, sleep=time.sleep, rng=self._rng,
        )
