"""What the client's layers cost per call: the flow (``kling_elements.api``) and its driver
against the bare HTTP round trip, for the sync and the async client.

Each measurement sends ``--calls`` ``get_task`` requests to an in-process scripted API
(``httpx.MockTransport``, no network, so the client's own work is all that differs):

* reference: ``httpx.Client.get`` + ``json.loads`` of the same answer (what any client must do);
* ``Client.get_task`` (the flow run by the sync driver: envelope, body cap, parsing);
* ``AsyncClient.get_task`` on one event loop, against ``httpx.AsyncClient.get`` + ``json.loads``.

Prints microseconds per call and the ratio to the reference measured in the same run.
Usage: python scripts/bench_client_layers.py [--calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import httpx

import kling_elements as ke

API = "/v1/videos/multi-elements"
ANSWER = {"code": 0, "message": "SUCCEED", "request_id": "r", "data": {
    "task_id": "t-1", "task_status": "processing", "task_status_msg": "",
    "task_info": {"external_task_id": "e-1"}, "created_at": 1, "updated_at": 2,
    "task_result": {"videos": []}}}
BODY = json.dumps(ANSWER).encode()


def reply(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=BODY, headers={"Content-Type": "application/json"})


def per_call(run, calls: int) -> float:
    run(10)  # warm up
    start = time.perf_counter()
    run(calls)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    calls = parser.parse_args().calls
    transport = httpx.MockTransport(reply)
    raw = httpx.Client(base_url="https://kling.example.com", transport=transport)
    client = ke.Client(api_key="k", base_url="https://kling.example.com", transport=transport)

    def bare(n: int) -> None:
        for _ in range(n):
            json.loads(raw.get(f"{API}/t-1").content)

    def sync(n: int) -> None:
        for _ in range(n):
            client.get_task("t-1")

    async def both_async(n: int) -> tuple[float, float]:
        async_transport = httpx.MockTransport(reply)
        async with httpx.AsyncClient(base_url="https://kling.example.com",
                                     transport=async_transport) as araw, \
                ke.AsyncClient(api_key="k", base_url="https://kling.example.com",
                               transport=async_transport) as aclient:
            async def timed(call) -> float:
                for _ in range(10):
                    await call()
                start = time.perf_counter()
                for _ in range(n):
                    await call()
                return (time.perf_counter() - start) / n * 1e6

            async def araw_get() -> None:
                json.loads((await araw.get(f"{API}/t-1")).content)

            return await timed(araw_get), await timed(lambda: aclient.get_task("t-1"))

    reference = per_call(bare, calls)
    layered = per_call(sync, calls)
    async_reference, async_layered = asyncio.run(both_async(calls))
    print(f"{calls} get_task calls each, in-process API")
    print(f"sync:  httpx {reference:7.1f} us/call | Client {layered:7.1f} us/call | "
          f"ratio {layered / reference:.2f}")
    print(f"async: httpx {async_reference:7.1f} us/call | AsyncClient {async_layered:7.1f} "
          f"us/call | ratio {async_layered / async_reference:.2f}")


if __name__ == "__main__":
    main()
