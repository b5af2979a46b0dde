# SPDX-License-Identifier: Apache-2.0
"""The per-client rate limit (limits.rate, ADR 0015) holds for the service, not per instance:
each of N instances enforces 1/N of it, so a client whose requests a load balancer spreads
over the instances gets about the configured rate in all (ADR 0018)."""

from __future__ import annotations

import math
import time

import httpx
import pytest

from tests.cluster.cluster_procs import Cluster
from tests.cluster.test_cross_instance import eventually, metrics

pytestmark = pytest.mark.e2e

DELIVER = "/msgs-msgdelivery/v1/deliver-as-message"


async def test_a_client_spread_over_two_instances_gets_the_configured_rate(
    cluster: Cluster,
) -> None:
    cluster.env = {"MSGIN5G_LIMITS_RATE": "2", "MSGIN5G_LIMITS_BURST": "20"}
    instances = [cluster.start_instance(), cluster.start_instance()]

    async def both_see_two() -> bool:
        return all(metrics(s)["msgin5g_cluster_live_instances"] == 2 for s in instances)

    await eventually(both_see_two)
    clients = [httpx.AsyncClient(base_url=s.url, http2=True, http1=False) for s in instances]
    try:
        await clients[0].post(
            "/msgs-asregistration/v1/registrations", json={"asSvcId": "sink"}
        )  # counts against the limit too
        started = time.monotonic()
        statuses = []
        for n in range(60):  # round robin, as a per-request balancer would
            body = {
                "oriAddr": {"addrType": "AS", "addr": "bench"},
                "destAddr": {"addrType": "AS", "addr": "sink"},
                "msgId": f"m-{n}",
                "payload": "x",
                "stoAndFwInd": True,
            }
            response = await clients[n % 2].post(DELIVER, json=body)
            statuses.append(response.status_code)
        elapsed = time.monotonic() - started
    finally:
        for client in clients:
            await client.aclose()
    assert set(statuses) == {200, 429}
    # A burst of 20 in all (10 per instance, one request already spent), plus the refill of
    # 2/s; each instance on its own would have let 40 through.
    assert 18 <= statuses.count(200) <= 20 + math.ceil(2 * elapsed) + 1, statuses
