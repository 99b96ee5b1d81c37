"""The only I/O of the clients: perform a flow's commands (see ``protocol``).

``SyncDriver`` sends with ``httpx.Client`` and waits with the client's ``sleep`` (a
``cancel`` event ends a default ``time.sleep`` wait at once); ``AsyncDriver`` sends with
``httpx.AsyncClient`` and awaits the client's async ``sleep``; a callback inbox, which
blocks, is waited on in a worker thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from ..errors import KlingError
from ..retry import notify_retry_observers
from .protocol import Answer, BodyCap, Command, Flow, Listen, Pause, Restore, Send, Sleep

__all__ = ["AsyncDriver", "SyncDriver"]

T = TypeVar("T")


class SyncDriver:
    """Runs flows in the calling thread."""

    base_url: str
    on_retry: Callable[[KlingError, float], None] | None
    _http: httpx.Client
    _sleep: Callable[[float], None]

    def _run(self, flow: Flow[T]) -> T:
        value: Any = None
        error: Exception | None = None
        while True:
            try:
                command = flow.throw(error) if error is not None else flow.send(value)
            except StopIteration as stop:
                return stop.value
            value, error = None, None
            try:
                value = self._perform(command)
            except Exception as exc:  # handed to the flow, which decides
                error = exc

    def _perform(self, command: Command) -> Any:
        if isinstance(command, Send):
            with self._http.stream(command.method, command.path, json=command.body,
                                   params=command.params) as response:
                cap = BodyCap(self.base_url, response.status_code, response.headers)
                for chunk in response.iter_bytes():
                    cap.add(chunk)
                return Answer(response.status_code, dict(response.headers), cap.content())
        if isinstance(command, Pause):
            return self._pause(command.error, command.seconds, command.cancel)
        if isinstance(command, Sleep):
            self._sleep(command.seconds)
            return None
        if isinstance(command, Listen):
            return command.inbox.wait_for(command.task_id, command.seconds,
                                          beyond=command.beyond)
        if isinstance(command, Restore):
            return self.restore(command.state, reason=command.reason)  # type: ignore[attr-defined]
        raise TypeError(f"unknown command {command!r}")

    def _pause(self, error: KlingError, wait: float, cancel: Any = None) -> bool:
        """Tell ``on_retry`` about the coming retry, then wait ``wait`` seconds.

        Returns True when ``cancel`` was set (before or during the wait). With the default
        ``sleep`` the wait is ``cancel.wait``, which a cancel ends at once; an injected
        ``sleep`` (a test's clock, a caller's scheduler) runs as is and ``cancel`` is read after.
        """
        hook = self.on_retry
        if hook is not None:
            hook(error, wait)
        notify_retry_observers(error, wait)
        if cancel is not None and self._sleep is time.sleep:
            return cancel.wait(wait)
        self._sleep(wait)
        return cancel is not None and cancel.is_set()


class AsyncDriver:
    """Runs flows on the event loop."""

    base_url: str
    on_retry: Callable[[KlingError, float], None] | None
    _http: httpx.AsyncClient
    _sleep: Callable[[float], Awaitable[None]]

    async def _run(self, flow: Flow[T]) -> T:
        value: Any = None
        error: Exception | None = None
        while True:
            try:
                command = flow.throw(error) if error is not None else flow.send(value)
            except StopIteration as stop:
                return stop.value
            value, error = None, None
            try:
                value = await self._perform(command)
            except Exception as exc:  # handed to the flow, which decides
                error = exc

    async def _perform(self, command: Command) -> Any:
        if isinstance(command, Send):
            async with self._http.stream(command.method, command.path, json=command.body,
                                         params=command.params) as response:
                cap = BodyCap(self.base_url, response.status_code, response.headers)
                async for chunk in response.aiter_bytes():
                    cap.add(chunk)
                return Answer(response.status_code, dict(response.headers), cap.content())
        if isinstance(command, Pause):
            hook = self.on_retry
            if hook is not None:
                hook(command.error, command.seconds)
            notify_retry_observers(command.error, command.seconds)
            await self._sleep(command.seconds)
            return command.cancel is not None and command.cancel.is_set()
        if isinstance(command, Sleep):
            await self._sleep(command.seconds)
            return None
        if isinstance(command, Listen):
            return await asyncio.to_thread(command.inbox.wait_for, command.task_id,
                                           command.seconds, beyond=command.beyond)
        if isinstance(command, Restore):
            return await self.restore(  # type: ignore[attr-defined]
                command.state, reason=command.reason)
        raise TypeError(f"unknown command {command!r}")
