# SPDX-License-Identifier: Apache-2.0
"""Admission limits (ADR 0015): per-client token buckets (429 TOO_MANY_REQUESTS + Retry-After)
that let well-behaved clients through a flood, and the cap on requests in flight
(429 NF_CONGESTION_RISK) that recovers by itself. Nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import httpx
import pytest

from msgin5g.api.app import HttpApp, Operation
from msgin5g.api.http import Request, Response
from msgin5g.bootstrap import ServerApp
from msgin5g.core.message import AS, Address
from msgin5g.observability import Metrics
from msgin5g.security.ratelimit import RateLimiter
from tests.security.conftest import Issuer, as_message, bearer

DELIVER = "/msgs-msgdelivery/v1/deliver-as-message"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.take("a") == 1  # empty: one token comes in 0.5 s -> Retry-After 1
    assert limiter.take("b") == 0  # buckets are per key
    clock.now += 0.5
    assert limiter.take("a") == 0
    assert limiter.take("a") == 1
    clock.now += 10
    assert [limiter.take("a") for _ in range(4)] == [0, 0, 0, 1]  # refilled to burst only


def test_retry_after_reflects_a_slow_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=0.1, burst=1, clock=clock)
    assert limiter.take("a") == 0
    assert limiter.take("a") == 10


def test_idle_buckets_are_dropped_when_the_table_is_full() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=1.0, burst=1, clock=clock, max_keys=10)
    for i in range(10):
        limiter.take(f"ip:{i}")
    clock.now += 5
    limiter.take("new")
    assert len(limiter._buckets) == 1


@pytest.fixture
def limits() -> dict[str, Any]:
    return {"rate": 5, "burst": 10}


async def test_a_flood_gets_429_while_a_well_behaved_client_is_served(
    api: httpx.AsyncClient, issuer: Issuer, server_app: ServerApp
) -> None:
    flooder = bearer(issuer.mint("as1", "msgs-msgdelivery"))
    polite = bearer(issuer.mint("as2", "msgs-msgdelivery"))

    async def flood(i: int) -> httpx.Response:
        body = as_message("as1", ("UE", "u1"), f"f-{i}")
        return await api.post(DELIVER, json=body, headers=flooder)

    async def polite_client() -> list[int]:
        statuses = []
        for i in range(4):
            body = as_message("as2", ("UE", "u1"), f"p-{i}")
            statuses.append((await api.post(DELIVER, json=body, headers=polite)).status_code)
            await asyncio.sleep(0.25)  # 4 per second, under the 5/s limit
        return statuses

    started = time.monotonic()
    floods, polite_statuses = await asyncio.gather(
        asyncio.gather(*(flood(i) for i in range(200))), polite_client()
    )
    elapsed = time.monotonic() - started
    assert polite_statuses == [200, 200, 200, 200]
    statuses = [r.status_code for r in floods]
    assert set(statuses) == {200, 429}
    # The burst of 10, plus what the rate of 5/s refilled meanwhile.
    assert 10 <= statuses.count(200) <= 10 + math.ceil(5 * elapsed) + 1
    limited = next(r for r in floods if r.status_code == 429)
    assert limited.json()["cause"] == "TOO_MANY_REQUESTS"
    assert int(limited.headers["retry-after"]) >= 1
    # Every acknowledged message is stored; no refused one is.
    for i, response in enumerate(floods):
        stored = await server_app.store.find_message(Address(AS, "as1"), f"f-{i}")
        assert (stored is not None) == (response.status_code == 200), i


async def test_forged_token_floods_are_limited_per_address(
    api: httpx.AsyncClient, issuer: Issuer
) -> None:
    from tests.security.conftest import new_rsa_key

    forged = bearer(issuer.mint("as1", "msgs-msgdelivery", key=new_rsa_key()))
    statuses = [(await api.post(DELIVER, json={}, headers=forged)).status_code for _ in range(30)]
    assert statuses[:10] == [401] * 10
    assert 429 in statuses


def _slow_app(gate: asyncio.Event, max_in_flight: int) -> HttpApp:
    async def slow(_request: Request) -> Response:
        await gate.wait()
        return Response(200, b"{}")

    op = Operation("POST", "/msgs-msgdelivery/v1/slow", "slow", slow)
    return HttpApp([op], Metrics(), max_in_flight=max_in_flight)


async def test_a_saturated_server_answers_429_and_recovers_by_itself() -> None:
    gate = asyncio.Event()
    app = _slow_app(gate, max_in_flight=3)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        held = [asyncio.create_task(client.post("/msgs-msgdelivery/v1/slow")) for _ in range(3)]
        await asyncio.sleep(0.05)
        refused = await client.post("/msgs-msgdelivery/v1/slow")
        assert refused.status_code == 429
        assert refused.json()["cause"] == "NF_CONGESTION_RISK"
        assert refused.headers["retry-after"] == "1"
        gate.set()
        assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200, 200]
        again = await client.post("/msgs-msgdelivery/v1/slow")
        assert again.status_code == 200


async def test_the_in_flight_count_returns_to_zero_after_errors() -> None:
    gate = asyncio.Event()
    gate.set()
    app = _slow_app(gate, max_in_flight=1)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        # A body over the limit fails inside admission's critical section.
        big = await client.post(
            "/msgs-msgdelivery/v1/slow",
            content=b"x" * 2_000_000,
            headers={"content-type": "application/json"},
        )
        assert big.status_code == 413
        assert (await client.post("/msgs-msgdelivery/v1/slow")).status_code == 200
        assert app._in_flight == 0


def test_several_instances_each_enforce_their_share() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=3.0, burst=9, clock=clock)
    limiter.share(3)  # three instances: 1/s and bursts of 3 here
    assert [limiter.take("a") for _ in range(4)] == [0, 0, 0, 1]
    clock.now += 1.0
    assert [limiter.take("a") for _ in range(2)] == [0, 1]
    limiter.share(1)  # alone again: the whole limit
    clock.now += 10
    assert [limiter.take("a") for _ in range(10)] == [0] * 9 + [1]
