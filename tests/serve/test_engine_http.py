"""Continuous batching as clients see it: back-pressure, streams beside plain requests, disconnects.

All through the real app over HTTP (tests/serve/conftest.py: one Generator replica with 8
batch rows and room for 8 waiting requests).
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from ray import serve

from tests.serve.conftest import API_KEY, MAX_TOKENS_LIMIT, QUEUE_BOUND

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {API_KEY}"}
STORY = [{"role": "user", "content": "Write a long story about a lighthouse keeper and a storm."}]


def engine_stats() -> dict:
    return serve.get_deployment_handle("Generator", app_name="expert").info.remote().result()["engine"]


def test_more_requests_than_rows_and_queue_get_429_with_retry_after_never_a_hang(app):
    async def flood() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=app.base_url, headers=AUTH, timeout=300) as client:
            body = {"model": "base", "messages": STORY, "max_tokens": MAX_TOKENS_LIMIT}
            return await asyncio.gather(*(client.post("/v1/chat/completions", json=body) for _ in range(40)))

    started = time.monotonic()
    responses = asyncio.run(flood())
    statuses = sorted(r.status_code for r in responses)
    refused = [r for r in responses if r.status_code == 429]
    assert set(statuses) == {200, 429}, statuses
    assert len(responses) - len(refused) >= 8 + QUEUE_BOUND  # every row and queue place was used
    assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
    assert all(r.json()["error"]["type"] == "rate_limit_error" and "overloaded" in r.json()["error"]["message"] for r in refused)
    assert time.monotonic() - started < 240
    assert engine_stats()["refused"] >= len(refused)


def test_plain_requests_finish_while_a_long_stream_on_the_same_replica_goes_on(app):
    async def run() -> tuple[float, list[float], list[int]]:
        async with httpx.AsyncClient(base_url=app.base_url, headers=AUTH, timeout=300) as client:
            stream_body = {"model": "base", "messages": STORY, "max_tokens": MAX_TOKENS_LIMIT, "temperature": 0.8, "seed": 1, "stream": True}
            plain_done: list[float] = []
            statuses: list[int] = []

            async def plain():
                r = await client.post("/v1/chat/completions", json={"model": "alpha", "messages": STORY, "max_tokens": 3})
                statuses.append(r.status_code)
                plain_done.append(time.monotonic())

            async with client.stream("POST", "/v1/chat/completions", json=stream_body) as response:
                plains = []
                async for line in response.aiter_lines():
                    if line.startswith("data: {") and '"content": "' in line and '"content": ""' not in line and not plains:
                        plains = [asyncio.ensure_future(plain()) for _ in range(3)]  # after the stream's first token
                await asyncio.gather(*plains)
                return time.monotonic(), plain_done, statuses

    stream_end, plain_done, statuses = asyncio.run(run())
    assert statuses == [200, 200, 200]
    assert max(plain_done) < stream_end  # no request waited for the stream to end


def test_a_client_that_disconnects_frees_its_row(app):
    before = engine_stats()

    async def read_a_little() -> int:
        async with httpx.AsyncClient(base_url=app.base_url, headers=AUTH, timeout=300) as client:
            body = {"model": "base", "messages": STORY, "max_tokens": MAX_TOKENS_LIMIT, "temperature": 0.9, "seed": 2, "stream": True}
            pieces = 0
            async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                        pieces += 1
                        if pieces == 2:
                            return pieces  # leaving the block closes the connection mid-stream

    assert asyncio.run(read_a_little()) == 2
    deadline = time.monotonic() + 30
    while (stats := engine_stats())["cancelled"] == before["cancelled"]:
        assert time.monotonic() < deadline, stats
        time.sleep(0.1)
    assert stats["running"] == 0 and stats["kv_used_bytes"] == 0
    assert stats["generated_tokens"] - before["generated_tokens"] < MAX_TOKENS_LIMIT  # stopped early, not finished
