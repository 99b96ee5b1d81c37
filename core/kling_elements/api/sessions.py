"""Selection sessions, with no I/O: what each selection call sends and remembers, and the
one protocol that restores a session (expired, gone on Kling's side, or in doubt).

Guarantees (see ``kling_elements.client``): points are never added or deleted twice nor
wiped by a late clear; a session's points outlive the session; every restore is charged to
the session's state, logged and reported to ``on_restore``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import validate
from ..cost import Cost
from ..errors import ConnectionFailed, NotFoundError, RestoreDisabledError, ServerError
from ..models import InitResult, PreviewResult, SelectionResult
from ..retry import backoff
from ..selection import SelectionState
from .protocol import (
    API,
    Flow,
    Pause,
    Restore,
    Transport,
    check_rejection,
    in_doubt,
    mask_dicts,
)

__all__ = ["RESTORE_MARGIN_S", "RestoreReport", "SessionFlows"]

log = logging.getLogger("kling_elements")

RESTORE_MARGIN_S = 120.0
"""A session with less than this left (by our clock) is restored before it is used.

Two minutes, the largest of the values this rule once had in three places: a call made just
before the end must still reach Kling while the session lives, after its own retries (up to
~8 s of backoff plus a timeout or two) and with this machine's clock a minute off Kling's.
Restoring a little early costs one init and the adds again; missing the end costs a refused
call (1203) and then the same restore, so the margin errs on the early side.
"""


@dataclass(frozen=True)
class RestoreReport:
    """One restore: the session it replaced, the new one, why, and what Kling reported
    deducting for it (every init and add it sent, abandoned attempts included)."""

    old_session_id: str
    new_session_id: str
    reason: str
    frames: int
    cost: Cost


class SessionFlows(Transport):
    """The selection endpoints as flows; the client classes add ``sessions``,
    ``auto_restore`` and ``on_restore``."""

    sessions: dict[str, SelectionState]
    auto_restore: bool
    on_restore: Callable[[RestoreReport], None] | None
    _rng: random.Random

    def _init(self, field: str, value: str) -> Flow[InitResult]:
        # Retried like a read: a replayed init at worst leaves an unused session behind.
        data = yield from self._request("POST", f"{API}/init-selection", body={field: value})
        check_rejection(data, "video")
        return InitResult.from_api(data)

    def _init_selection(self, video_url: str | None, video_id: str | None) -> Flow[InitResult]:
        field, value = validate.video_source(video_url, video_id)
        result = yield from self._init(field, value)
        self.sessions[result.session_id] = SelectionState(
            session_id=result.session_id,
            total_frames=result.total_frames,
            fps=result.fps,
            duration_s=result.duration_s,
            video_url=value if field == "video_url" else None,
            video_id=value if field == "video_id" else None,
            spent=result.cost,
            width=result.width or None,
            height=result.height or None,
        )
        return result

    def _restore(self, session: str | SelectionState, reason: str) -> Flow[SelectionState]:
        state = session if isinstance(session, SelectionState) else self.sessions[session]
        if state.video_id:
            field, value = "video_id", state.video_id
        elif state.video_url:
            field, value = "video_url", state.video_url
        else:
            raise ValueError(
                f"session {state.session_id} cannot be restored: its video is not known (start "
                "a new session with init_selection)"
            )
        attempt = 0
        cost = Cost()
        while True:
            init = yield from self._init(field, value)
            cost += init.cost
            masks: dict[int, list[dict[str, Any]]] = {}
            try:
                for frame in state.frames():
                    body = {"session_id": init.session_id, "frame_index": frame,
                            "points": [{"x": x, "y": y} for x, y in state.points[frame]]}
                    data = yield from self._request("POST", f"{API}/add-selection", body=body,
                                                    idempotent=False)
                    cost += Cost.from_api(data)
                    check_rejection(data, f"frame {frame}")
                    masks[frame] = mask_dicts(
                        SelectionResult.from_api(data).fit_frame(
                            init.frame_size or state.frame_size))
            except (ConnectionFailed, ServerError) as exc:
                # This new session's points are in doubt as well: abandon it too.
                if attempt >= self.max_retries:
                    raise
                yield Pause(exc, backoff(attempt, self._rng))
                attempt += 1
                continue
            break
        old = state.session_id
        state.session_id = init.session_id
        state.started_at = time.time()
        state.total_frames, state.fps = init.total_frames, init.fps
        state.duration_s = init.duration_s
        if init.frame_size:  # the same video: a size Kling left out this time stays known
            state.height, state.width = init.frame_size
        state.masks = masks
        state.charge_restore(cost)
        self.sessions[init.session_id] = state
        self.sessions.setdefault(old, state)
        log.info("session %s replaced by %s (%s; %d frame(s) replayed; cost %s)", old,
                 init.session_id, reason, len(masks), cost)
        hook = self.on_restore
        if hook is not None:
            hook(RestoreReport(old, init.session_id, reason, len(masks), cost))
        return state

    def _refuse_restore(self, state: SelectionState, reason: str) -> None:
        """Raise :class:`RestoreDisabledError` when ``auto_restore`` is off (nothing sent)."""
        if not self.auto_restore:
            frames = len(state.frames())
            raise RestoreDisabledError(
                f"session {state.session_id} {reason}; restoring it would start a new session "
                f"and replay {frames} marked frame(s) (init + {frames} add(s), charged again), "
                "but restores are turned off for this client (auto_restore=False; on the "
                "command line --no-restore): allow them, call client.restore(session) to "
                "restore it anyway, or start a new session with init_selection"
            )

    def _auto_restore(self, state: SelectionState, reason: str) -> Flow[None]:
        """Restore ``state`` unless ``auto_restore`` is off (then nothing is sent)."""
        self._refuse_restore(state, reason)
        yield Restore(state, reason)

    def _expired(self, state: SelectionState) -> bool:
        return state.restorable and state.seconds_left() <= RESTORE_MARGIN_S

    def _in_live_session(
        self, state: SelectionState, send: Callable[[str], Flow[Any]], what: str,
        *, in_doubt_restores: bool = True,
    ) -> Flow[Any]:
        """``send(session_id)`` on a session holding exactly ``state``'s points.

        A session expired by our clock is restored first; one Kling says is gone (1203) is
        restored once and the call sent again. A call whose outcome is unknown (timeout,
        dropped connection, 5000-5002) is never replayed on the same session, where its first
        attempt may have taken effect or may still do so: the points are moved to a new
        session (``restore``) and the call is sent there. With ``in_doubt_restores=False`` (a
        call that changes nothing, already retried by ``_request``) such failures are raised.
        """
        attempt = 0
        restored_after_404 = False
        while True:
            if self._expired(state):
                yield from self._auto_restore(state, "expired (sessions last 24 h)")
            try:
                return (yield from send(state.session_id))
            except NotFoundError:
                if not state.restorable or restored_after_404:
                    raise
                restored_after_404 = True
                log.info("session %s is gone on the server: restoring it", state.session_id)
                yield from self._auto_restore(state, "is gone on the server (1203)")
            except (ConnectionFailed, ServerError) as exc:
                if not in_doubt_restores:
                    raise
                if not state.restorable:
                    raise in_doubt(exc, what) from None
                if attempt >= self.max_retries:
                    raise
                self._refuse_restore(state, f"may or may not have taken the {what} whose "
                                            f"answer was lost ({exc.message})")
                yield Pause(exc, backoff(attempt, self._rng))
                attempt += 1
                yield Restore(state, f"the answer to a {what} was lost")

    def _selection_call(
        self, endpoint: str, session_id: str, frame_index: int, points: Sequence[object]
    ) -> Flow[SelectionResult]:
        state = self.sessions.get(session_id)
        validate.frame_index(frame_index, state.total_frames if state else None)
        exact = validate.points(points)
        adding = endpoint == "add-selection"
        if state is not None:
            if adding:
                state.check_add(frame_index, exact)
            else:
                exact = state.exact_points(frame_index, exact)

        def send(live_id: str) -> Flow[Any]:
            body = {
                "session_id": live_id,
                "frame_index": frame_index,
                "points": [{"x": x, "y": y} for x, y in exact],
            }
            # Not idempotent: a replayed add would add the points twice (Kling keeps copies).
            data = yield from self._request("POST", f"{API}/{endpoint}", body=body,
                                            idempotent=False)
            check_rejection(data, f"frame {frame_index}")
            return data

        if state is None:
            try:
                data = yield from send(session_id)
            except (ConnectionFailed, ServerError) as exc:
                raise in_doubt(exc, endpoint) from None
        else:
            data = yield from self._in_live_session(state, send, endpoint)
        result = SelectionResult.from_api(data)
        if state is not None:
            state.charge(result.cost)  # charged even if the masks below are refused
        result = result.fit_frame(state.frame_size if state else None)
        if state is not None:
            state.record(frame_index, exact, mask_dicts(result), added=adding)
        return result

    def _clear_selection(self, session_id: str) -> Flow[Cost]:
        state = self.sessions.get(session_id)

        def replace(reason: str) -> Flow[Cost]:
            assert state is not None
            self._refuse_restore(state, reason)  # raises before anything changes
            before = state.restore_spent
            state.clear()
            yield Restore(state, reason)
            return state.restore_spent - before

        if state is not None and self._expired(state):
            return (yield from replace("expired (sessions last 24 h)"))
        try:
            data = yield from self._request(
                "POST", f"{API}/clear-selection", idempotent=False,
                body={"session_id": state.session_id if state else session_id})
        except NotFoundError:
            if state is None or not state.restorable:
                raise
            return (yield from replace("is gone on the server (1203)"))
        except (ConnectionFailed, ServerError) as exc:
            if state is None or not state.restorable:
                raise in_doubt(exc, "clear-selection") from None
            return (yield from replace(
                f"may or may not have been cleared: the answer was lost ({exc.message})"))
        check_rejection(data, "selection")
        cost = Cost.from_api(data)
        if state is not None:
            state.charge(cost)
            state.clear()
        return cost

    def _preview_selection(self, session_id: str) -> Flow[PreviewResult]:
        state = self.sessions.get(session_id)

        def send(live_id: str) -> Flow[Any]:
            data = yield from self._request("POST", f"{API}/preview-selection",
                                            body={"session_id": live_id})
            check_rejection(data, "selection")
            return data

        if state is None:
            data = yield from send(session_id)
        else:
            data = yield from self._in_live_session(state, send, "preview-selection",
                                                    in_doubt_restores=False)
        result = PreviewResult.from_api(data)
        if state is not None:
            state.charge(result.cost)
        return result
