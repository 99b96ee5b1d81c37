"""The sandbox's HTTP surface: Kling's Multi-Elements routes plus a few ``/sandbox/*`` tools.

Every API answer is Kling's envelope with the HTTP status ``errors.CODES`` gives its code.
Each request goes through :meth:`_Api.endpoint`, which in this order: applies a pending fault
rule for its route (error, drop before commit), authenticates (API routes and the sandbox
tools alike; files are public like a CDN), parses the JSON body, applies a delay rule (the
request is in hand, so it is still carried out when the client stops waiting, as on a slow
server), answers a reject rule (code 0, non-zero ``data.status``, nothing done), runs the
handler (slow work in a worker thread so the server stays responsive),
applies a drop-after-commit rule, and logs route, code and request id at DEBUG (never a
header or a key). A successful answer says how long its handler took in ``Server-Timing``
(``app``; selection calls also ``seg``, the segmentation). A client that leaves before its
body is read is logged, not an error.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import PurePosixPath

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from .. import validate
from ..errors import ValidationError
from . import selection
from .auth import ACCOUNT, verify_authorization
from .billing import Billing
from .config import SUCCESS_MESSAGE, ApiError, SandboxConfig, envelope, new_request_id
from .faults import FaultRule, parse_rules
from .fetch import MAX_VIDEO_BYTES
from .files import FileSender, abort
from .state import State
from .tasks import create_task, status_at, task_object

__all__ = ["API_PREFIX", "MAX_UPLOAD_BYTES", "create_app"]

log = logging.getLogger("kling_elements.sandbox")
API_PREFIX = "/v1/videos/multi-elements"
MAX_UPLOAD_BYTES = MAX_VIDEO_BYTES
MAX_JSON_BYTES = 64 * 1024 * 1024  # two 10 MB images in base64 fit with room to spare
_INT = re.compile(r"^-?\d{1,9}$")

Handler = Callable[[Request, str | None, dict | None], Awaitable[object]]


class _Drop:
    """ASGI response that closes the connection without any HTTP answer."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await abort(scope, receive)


async def _json_body(request: Request) -> dict:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_JSON_BYTES:
            raise ApiError(1200, f"the request body is over {MAX_JSON_BYTES // 2**20} MB")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise ApiError(1200, "the request body is empty: send a JSON object")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(1200, f"the request body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise ApiError(1200, "the request body must be a JSON object")
    return body


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _timings(request: Request) -> dict[str, float]:
    """Where a handler notes the seconds its parts took (``seg``), for ``Server-Timing``."""
    request.state.timings = {}
    return request.state.timings


def _server_timing(request: Request, app_s: float) -> str:
    """``Server-Timing`` of a successful answer: the parts a handler noted (``seg``, the
    segmentation of a selection call) and ``app``, the handler's whole time, in ms.

    Clients can subtract the server's own work from what they measured (our click
    benchmark does, ``scripts/bench_click.py``)."""
    parts = {**getattr(request.state, "timings", {}), "app": app_s}
    return ", ".join(f"{name};dur={seconds * 1000:.2f}" for name, seconds in parts.items())


class _Api:
    def __init__(self, config: SandboxConfig, state: State) -> None:
        self.config = config
        self.state = state
        if state.billing is None:
            state.billing = Billing(config, state.clock.now())
        self.billing = state.billing

    def _charged(self, endpoint: str, data: dict) -> dict:
        """``data`` of a successful selection answer with the call's deduction added."""
        return {**data, **self.billing.charge(endpoint, self.state.clock.now())}

    def _status(self, now: float):
        return lambda task: status_at(task, now, self.config.task_seconds)[0]

    def endpoint(
        self, route: str | None, handler: Handler, *, body: bool = False
    ) -> Callable[[Request], Awaitable[Response | _Drop]]:
        """Wrap ``handler(request, owner, body) -> data`` with faults, auth and the envelope."""

        async def run(request: Request) -> Response | _Drop:
            request_id = new_request_id()
            code: int | str = 0
            rule = self.state.faults.take(route) if route else None
            try:
                early = await self._fault_before(rule, request_id, delay=False)
                if early is not None:
                    code = rule.error["code"] if rule and rule.error else "dropped"
                    return early
                owner = self._authenticate(request)
                parsed = await _json_body(request) if body else None
                if rule is not None and rule.delay_s:
                    await anyio.sleep(rule.delay_s)
                if rule is not None and rule.reject:
                    # Kling's rejection: code 0, a non-zero data.status, nothing carried out.
                    code = f"0 (status {rule.reject['status']})"
                    response: Response | _Drop = envelope(
                        0, rule.reject["message"], request_id, {"status": rule.reject["status"]})
                    return response
                started = time.perf_counter()
                data = await handler(request, owner, parsed)
                response = envelope(0, SUCCESS_MESSAGE, request_id, data)
                response.headers["Server-Timing"] = _server_timing(
                    request, time.perf_counter() - started)
            except ClientDisconnect:
                code = "client gone"
                return _Drop()
            except ApiError as exc:
                code = exc.code
                response = envelope(exc.code, exc.message, request_id)
            except Exception:
                log.exception("sandbox %s failed (request_id %s)", route, request_id)
                code = 5000
                response = envelope(5000, "internal server error", request_id)
            finally:
                log.debug("sandbox %s %s code=%s request_id=%s",
                          request.method, route or request.url.path, code, request_id)
            if rule is not None and rule.drop == "after_commit":
                return _Drop()
            return response

        return run

    async def _fault_before(
        self, rule: FaultRule | None, request_id: str, *, delay: bool = True
    ) -> Response | None:
        if rule is None:
            return None
        if rule.error is not None:
            error = rule.error
            return envelope(error["code"], error["message"], request_id, http_status=error["http"])
        if delay and rule.delay_s:
            await anyio.sleep(rule.delay_s)
        if rule.drop == "before_commit":
            return _Drop()  # type: ignore[return-value]
        return None

    def _authenticate(self, request: Request) -> str:
        """The caller's account (tasks, their limit and external ids are scoped by it)."""
        verify_authorization(
            request.headers.get("authorization"),
            api_key=self.config.api_key, access_key=self.config.access_key,
            secret_key=self.config.secret_key, now=self.state.clock.now(),
        )
        return ACCOUNT

    # selection -------------------------------------------------------------------------
    async def init_selection(self, request: Request, owner: str | None, body: dict | None):
        return self._charged("init-selection", await anyio.to_thread.run_sync(
            selection.init_session, self.state, self.config, body, _base(request)
        ))

    async def add_selection(self, request: Request, owner: str | None, body: dict | None):
        session = self.state.session(body.get("session_id"))
        return self._charged("add-selection", await anyio.to_thread.run_sync(
            selection.add_points, self.state, session, body.get("frame_index"),
            body.get("points"), self.config.mask_size_order, _timings(request),
        ))

    async def delete_selection(self, request: Request, owner: str | None, body: dict | None):
        session = self.state.session(body.get("session_id"))
        return self._charged("delete-selection", await anyio.to_thread.run_sync(
            selection.delete_points, self.state, session, body.get("frame_index"),
            body.get("points"), self.config.mask_size_order, _timings(request),
        ))

    async def clear_selection(self, request: Request, owner: str | None, body: dict | None):
        session = self.state.session(body.get("session_id"))
        return self._charged("clear-selection", await anyio.to_thread.run_sync(
            selection.clear_points, session))

    async def preview_selection(self, request: Request, owner: str | None, body: dict | None):
        session = self.state.session(body.get("session_id"))
        return self._charged("preview-selection", await anyio.to_thread.run_sync(
            selection.preview, self.state, session, _base(request)
        ))

    # tasks -----------------------------------------------------------------------------
    async def create(self, request: Request, owner: str | None, body: dict | None):
        task = await anyio.to_thread.run_sync(
            create_task, self.state, self.config, owner, body
        )
        stamp = int(task.created_at * 1000)
        return {
            "task_id": task.id, "task_status": "submitted",
            "task_info": {"external_task_id": task.external_task_id},
            "created_at": stamp, "updated_at": stamp,
        }

    async def get(self, request: Request, owner: str | None, body: dict | None):
        ident = request.path_params["task_id"]
        task = self.state.find_task(owner, ident)
        if task is None:
            raise ApiError(1203, f"task {ident!r} does not exist (task_id or external_task_id)")
        return task_object(
            self.state, task, self.state.clock.now(), self.config.task_seconds, _base(request)
        )

    async def list_tasks(self, request: Request, owner: str | None, body: dict | None):
        values = {}
        for name, default in (("pageNum", "1"), ("pageSize", "30")):
            raw = request.query_params.get(name, default)
            if not _INT.match(raw.strip()):
                raise ApiError(1201, f"{name} {raw!r} must be an integer")
            values[name] = int(raw)
        try:
            page, size = validate.page(values["pageNum"], values["pageSize"])
        except ValidationError as exc:
            raise ApiError(1201, f"pageNum/pageSize: {exc}") from None
        now, base = self.state.clock.now(), _base(request)
        tasks = self.state.tasks_of(owner)[(page - 1) * size: page * size]
        return [task_object(self.state, t, now, self.config.task_seconds, base) for t in tasks]

    # account ---------------------------------------------------------------------------
    async def account_costs(self, request: Request, owner: str | None, body: dict | None):
        now = self.state.clock.now()
        return self.billing.account(dict(request.query_params), self.state.all_tasks(),
                                    self._status(now), now)

    # sandbox tools ---------------------------------------------------------------------
    async def upload(self, request: Request, owner: str | None, body: dict | None):
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES + 64 * 1024:
            raise ApiError(1201, f"file: over the {MAX_UPLOAD_BYTES // 2**20} MB upload limit")
        # Capped before parsing: the multipart parser spools a file part to a temporary
        # file whatever its size, so a body without Content-Length is counted as it arrives.
        capped = Request(request.scope, _capped_receive(request.receive,
                                                        MAX_UPLOAD_BYTES + 64 * 1024))
        try:
            form = await capped.form(max_files=1, max_fields=16)
        except HTTPException as exc:
            raise ApiError(1200, f"the multipart body cannot be parsed: {exc.detail}") from None
        try:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise ApiError(1201, "multipart field 'file' (a file) is required")
            suffix = PurePosixPath(upload.filename or "").suffix.lower()
            if not re.fullmatch(r"\.[a-z0-9]{1,8}", suffix):
                suffix = ""
            name, path = self.state.new_file("uploads", suffix)
            await anyio.to_thread.run_sync(_copy_capped, upload.file, path)
        finally:
            await form.close()
        return {"url": self.state.file_url(name, _base(request))}

    async def faults(self, request: Request, owner: str | None, body: dict | None):
        book = self.state.faults
        if request.method == "POST":
            book.add(parse_rules(await _json_body(request)))
        elif request.method == "DELETE":
            book.clear()
        return {"rules": book.snapshot()}

    async def clock(self, request: Request, owner: str | None, body: dict | None):
        clock = self.state.clock
        if request.method == "POST":
            advance = (await _json_body(request)).get("advance_s")
            if (isinstance(advance, bool) or not isinstance(advance, (int, float))
                    or not math.isfinite(advance) or advance < 0):
                raise ApiError(1201, "advance_s must be a number of seconds >= 0")
            clock.advance(float(advance))
        now = clock.now()
        return {"now": now, "now_ms": int(now * 1000), "offset_s": clock.offset}

    async def stats(self, request: Request, owner: str | None, body: dict | None):
        with self.state.lock:
            created = dict(self.state.created)
            total = len(self.state.tasks)
            files = dict(self.state.file_requests)
            requests = dict(self.state.requests)
        return {"created": created, "tasks": total, "file_requests": files,
                "requests": requests}

    # files (public) --------------------------------------------------------------------
    async def files(self, request: Request) -> Response | FileSender | _Drop:
        request_id = new_request_id()
        rule = self.state.faults.take("files")
        early = await self._fault_before(rule, request_id)
        if early is not None:
            return early
        path = self.state.file_path(request.path_params["name"])
        if path is None or not path.is_file():
            log.debug("sandbox files code=1203 request_id=%s", request_id)
            return envelope(1203, "no such file (result files are deleted after 30 days)",
                            request_id)
        log.debug("sandbox files code=0 request_id=%s", request_id)
        with self.state.lock:
            self.state.file_requests["range" if "range" in request.headers else "full"] += 1
        return FileSender(path, request_id=request_id,
                          truncate=rule.truncate if rule is not None else None)


def _capped_receive(receive: Receive, limit: int) -> Receive:
    """``receive`` that refuses (1201) a request body once more than ``limit`` bytes came."""
    seen = 0

    async def capped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise ApiError(
                    1201, f"file: over the {MAX_UPLOAD_BYTES // 2**20} MB upload limit"
                )
        return message

    return capped


def _copy_capped(source, path) -> None:
    total = 0
    with open(path, "wb") as out:
        while chunk := source.read(1024 * 1024):
            total += len(chunk)
            if total > MAX_UPLOAD_BYTES:
                out.close()
                path.unlink(missing_ok=True)
                raise ApiError(1201, f"file: over the {MAX_UPLOAD_BYTES // 2**20} MB limit")
            out.write(chunk)


class _Counted:
    """ASGI wrapper counting every HTTP request in ``state.requests`` before routing, so a
    test can prove that nothing at all reached the server (any route, any answer)."""

    def __init__(self, app: Starlette, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            with self.state.lock:
                self.state.requests[f"{scope['method']} {scope['path']}"] += 1
        await self.app(scope, receive, send)


def create_app(config: SandboxConfig, state: State) -> _Counted:
    """The Starlette app serving ``state`` under ``config``'s keys and timings.

    Unknown paths and wrong methods answer 404 with code 1202, like Kling. Every request is
    counted in ``state.requests`` (also listed by ``/sandbox/stats``).
    """
    api = _Api(config, state)
    e = api.endpoint
    p = API_PREFIX
    routes = [
        Route(f"{p}/init-selection", e("init-selection", api.init_selection, body=True),
              methods=["POST"]),
        Route(f"{p}/add-selection", e("add-selection", api.add_selection, body=True),
              methods=["POST"]),
        Route(f"{p}/delete-selection", e("delete-selection", api.delete_selection, body=True),
              methods=["POST"]),
        Route(f"{p}/clear-selection", e("clear-selection", api.clear_selection, body=True),
              methods=["POST"]),
        Route(f"{p}/preview-selection", e("preview-selection", api.preview_selection, body=True),
              methods=["POST"]),
        Route(p, e("create", api.create, body=True), methods=["POST"]),
        Route(p, e("list", api.list_tasks), methods=["GET"]),
        Route(p + "/{task_id}", e("get", api.get), methods=["GET"]),
        Route("/account/costs", e("account", api.account_costs), methods=["GET"]),
        Route("/sandbox/files/{name}", api.files, methods=["GET", "HEAD"]),
        Route("/sandbox/uploads", e("uploads", api.upload), methods=["POST"]),
        Route("/sandbox/faults", e(None, api.faults), methods=["GET", "POST", "DELETE"]),
        Route("/sandbox/clock", e(None, api.clock), methods=["GET", "POST"]),
        Route("/sandbox/stats", e(None, api.stats), methods=["GET"]),
    ]

    async def unknown(request: Request, exc: Exception) -> Response:
        request_id = new_request_id()
        log.debug("sandbox %s %s code=1202 request_id=%s",
                  request.method, request.url.path, request_id)
        return envelope(1202, f"no route {request.method} {request.url.path}", request_id)

    return _Counted(Starlette(routes=routes, exception_handlers={404: unknown, 405: unknown}),
                    state)
