# SPDX-License-Identifier: Apache-2.0
"""Two `msgin5g server` instances on one PostgreSQL schema and one NATS JetStream (ADR 0018):
what one instance accepts reaches a recipient served by the other, once and in order: A2P to
a UE observing the other instance, UE2AS, a group and a topic with members on both."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from msgin5g.coap import TransmissionParameters
from msgin5g.sdk import AsClient, UeClient
from msgin5g.sdk.ue import SdkError
from tests.cluster.cluster_procs import Cluster, NatsServer
from tests.support.procs import Receiver, ServerProcess

pytestmark = pytest.mark.e2e

FAST = TransmissionParameters(ack_timeout=0.3, exchange_lifetime=10.0, non_lifetime=10.0)
Json = dict[str, Any]
DELIVER_AS = "/msgs-msgdelivery/v1/deliver-as-message"
TOPICS = "/msgs-topiclistevent/v1"


def coap(server: ServerProcess) -> str:
    return f"coap://127.0.0.1:{server.coap_port}"


def address(kind: str, value: str) -> dict[str, str]:
    return {"addrType": kind, "addr": value}


async def take(inbox: AsyncIterator[Json], count: int, within: float = 15.0) -> list[Json]:
    out: list[Json] = []
    async with asyncio.timeout(within):
        while len(out) < count:
            out.append(await anext(inbox))
    return out


async def quiet(inbox: AsyncIterator[Json], within: float = 1.5) -> list[Json]:
    """Whatever else arrives within `within` s (duplicates would show here)."""
    extra: list[Json] = []
    try:
        async with asyncio.timeout(within):
            while True:
                extra.append(await anext(inbox))
    except TimeoutError:
        return extra


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Registry changes reach the other instance over NATS within milliseconds, not at once."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "the other instance never saw the change"
        await asyncio.sleep(0.05)


def metrics(server: ServerProcess) -> dict[str, float]:
    text = httpx.get(f"{server.url}/metrics").text
    return {
        name: float(value)
        for line in text.splitlines()
        if line.startswith("msgin5g_cluster_")
        for name, _, value in [line.partition(" ")]
    }


def bodies(receiver: Receiver, path: str) -> list[Json]:
    return [r["body"] for r in receiver.received() if r["path"] == path]  # type: ignore[misc]


async def test_a2p_and_ue2as_cross_instances_once_and_in_order(
    cluster: Cluster, tmp_path: Path
) -> None:
    # An AS takes up to delivery.as_window deliveries at once (ADR 0004), which lets them
    # overtake each other; with a window of one the order to the AS is checked too.
    cluster.env = {"MSGIN5G_DELIVERY_AS_WINDOW": "1"}
    a, b = cluster.start_instance(), cluster.start_instance()
    receiver = Receiver(tmp_path / "as.jsonl", "h2c").start()
    try:
        async with (
            AsClient(a.url, "as-1") as app,
            UeClient(coap(b), "ue-1", params=FAST) as ue,
        ):
            await app.register(target_uri=receiver.url)
            await ue.register()
            inbox = ue.inbox()
            assert await take(inbox, 1) == [{"pending": 0}]

            async def a_knows_ue() -> bool:
                ack = await app.send("UE:ue-1", "probe", msg_id=f"probe-{time.monotonic()}")
                return ack.get("status") != "DELY_FAILED"

            await eventually(a_knows_ue)
            (probe,) = await take(inbox, 1)
            assert probe["payload"] == "probe"
            # A2P: accepted by instance A, delivered by instance B where the UE observes.
            for n in range(20):
                ack = await app.send("UE:ue-1", f"down-{n}", msg_id=f"down-{n}", store=True)
                assert ack.get("status") != "DELY_FAILED", ack
            got = await take(inbox, 20)
            assert [m["payload"] for m in got] == [f"down-{n}" for n in range(20)]
            assert await quiet(inbox) == []

            # UE2AS: sent by the UE to instance B, for the AS registered through instance A.
            for n in range(20):
                resp = await ue.send("AS:as-1", f"up-{n}", msg_id=f"up-{n}")
                assert resp == {"msgType": "MSGRESP", "msgId": f"up-{n}"}
            await asyncio.to_thread(receiver.wait_for, 20, 15.0)
            await asyncio.sleep(1.0)
            uplink = bodies(receiver, "/cb/deliver-message")
            assert [m["payload"] for m in uplink] == [f"up-{n}" for n in range(20)]
            await inbox.aclose()
        # The hand-offs went over JetStream doorbells (not only the periodic rescan), and the
        # two instances share the 64 shards.
        held = 0
        for server in (a, b):
            values = metrics(server)
            held += int(values["msgin5g_cluster_shards_held"])
            assert values["msgin5g_cluster_live_instances"] == 2
        assert held == 64
        assert metrics(b)["msgin5g_cluster_doorbells_received_total"] >= 1
    finally:
        receiver.stop()


async def test_group_and_topic_with_members_on_both_instances(
    cluster: Cluster, tmp_path: Path
) -> None:
    a, b = cluster.start_instance(), cluster.start_instance()
    reader = Receiver(tmp_path / "reader.jsonl", "h2c").start()
    try:
        async with (
            httpx.AsyncClient(base_url=a.url, http1=False, http2=True) as ha,
            httpx.AsyncClient(base_url=b.url, http1=False, http2=True) as hb,
            UeClient(coap(b), "ue-b", params=FAST) as ue_b,
            UeClient(coap(a), "ue-a", params=FAST) as ue_a,
        ):
            r = await ha.post(
                "/msgs-asregistration/v1/registrations",
                json={"asSvcId": "reader", "targetUri": reader.url},
            )
            assert r.status_code == 201, r.text
            await ue_b.register()
            await ue_a.register()
            inbox_b, inbox_a = ue_b.inbox(), ue_a.inbox()
            await take(inbox_b, 1)
            await take(inbox_a, 1)
            members = [address("AS", "reader"), address("UE", "ue-a"), address("UE", "ue-b")]
            r = await hb.put("/ext-groups/v1/groups/crew", json={"members": members})
            assert r.status_code in (200, 201), r.text

            async def send(http: httpx.AsyncClient, dest: dict[str, str], msg_id: str) -> Json:
                ack = await http.post(
                    DELIVER_AS,
                    json={
                        "oriAddr": address("AS", "sender"),
                        "destAddr": dest,
                        "msgId": msg_id,
                        "payload": msg_id,
                        "stoAndFwInd": True,
                    },
                )
                assert ack.status_code == 200, ack.text
                body: Json = ack.json()
                return body

            async def a_knows_group() -> bool:
                return (await ha.get("/ext-groups/v1/groups/crew")).status_code == 200

            # The group was created through B; the message is accepted by A.
            await eventually(a_knows_group)
            assert "status" not in await send(ha, address("GROUP", "crew"), "g-1")
            assert [m["payload"] for m in await take(inbox_a, 1)] == ["g-1"]
            assert [m["payload"] for m in await take(inbox_b, 1)] == ["g-1"]
            await asyncio.to_thread(reader.wait_for, 1, 15.0)

            # Topic: ue-b subscribes over CoAP at B, the AS "reader" over HTTP at A; the
            # message is accepted by B.
            await ue_b.subscribe_topics(["news"])
            r = await ha.post(
                f"{TOPICS}/request-topic-subscription",
                json={"oriAddr": address("AS", "reader"), "msgTopics": ["news", "probe"]},
            )
            assert r.status_code in (200, 201, 204), r.text

            async def b_knows_reader_subscribed() -> bool:
                # B fans out to the subscribers it knows. No API lists them; "probe" has the
                # AS as its only subscriber, so B stops failing it once B loaded A's change.
                ack = await send(hb, address("TOPIC", "probe"), f"probe-{time.monotonic()}")
                return ack.get("status") != "DELY_FAILED"

            await eventually(b_knows_reader_subscribed)
            assert "status" not in await send(hb, address("TOPIC", "news"), "t-1")
            assert [m["payload"] for m in await take(inbox_b, 1)] == ["t-1"]
            await asyncio.to_thread(reader.wait_for, 3, 15.0)
            assert await quiet(inbox_a, 1.0) == []
            assert await quiet(inbox_b, 0.5) == []
            got = sorted(
                m["payload"]
                for m in bodies(reader, "/cb/deliver-message")
                if not m["payload"].startswith("probe-")
            )
            assert got == ["g-1", "t-1"]
            await inbox_a.aclose()
            await inbox_b.aclose()
    finally:
        reader.stop()


async def test_a_ue_observing_at_another_instance_takes_its_lane_along(
    cluster: Cluster, tmp_path: Path
) -> None:
    a, b = cluster.start_instance(), cluster.start_instance()
    async with AsClient(a.url, "as-1") as app:
        await app.register()
        async with UeClient(coap(b), "ue-1", params=FAST) as at_b:
            await at_b.register()
            old = at_b.inbox()
            assert await take(old, 1) == [{"pending": 0}]

            async def a_knows_ue() -> bool:
                ack = await app.send("UE:ue-1", "probe", msg_id=f"probe-{time.monotonic()}")
                return ack.get("status") != "DELY_FAILED"

            await eventually(a_knows_ue)
            await app.send("UE:ue-1", "m1", msg_id="m1", store=True)
            assert [m["payload"] for m in await take(old, 2)] == ["probe", "m1"]
            await asyncio.sleep(0.3)  # B deletes m1 once the UE's CoAP ACK is in
            # The UE observes at A now (a new source port: as after a NAT rebinding or a
            # load balancer change): A runs its lane, B ends its old observation.
            async with UeClient(coap(a), "ue-1", params=FAST) as at_a:
                new = at_a.inbox()
                assert await take(new, 1) == [{"pending": 0}]
                with pytest.raises(SdkError, match=r"4\.04"):
                    await take(old, 1)
                for n in (2, 3, 4):
                    ack = await app.send("UE:ue-1", f"m{n}", msg_id=f"m{n}", store=True)
                    assert ack.get("status") != "DELY_FAILED", ack
                got = await take(new, 3)
                assert [m["payload"] for m in got] == ["m2", "m3", "m4"]
                await asyncio.sleep(0.5)  # A deletes m4 once the UE's CoAP ACK is in
                await new.aclose()  # offline: what comes now is stored
            for n in (5, 6):
                ack = await app.send("UE:ue-1", f"m{n}", msg_id=f"m{n}", store=True)
                assert ack.get("status") != "DELY_FAILED", ack
        # Back at B: the stored messages follow the UE there, in order, once.
        async with UeClient(coap(b), "ue-1", params=FAST) as again:
            inbox = again.inbox()
            first = await take(inbox, 3)
            assert first[0] == {"pending": 2}
            assert [m["payload"] for m in first[1:]] == ["m5", "m6"]
            assert await quiet(inbox) == []
            await inbox.aclose()


async def test_ue_registrations_reach_the_other_instance_key_by_key(cluster: Cluster) -> None:
    """A UE registration made at one instance is re-read by the others for that UE alone, not
    by reloading the whole UE registry, which may hold millions (ADR 0018); so is a
    de-registration and a gateway's registration of its UEs."""
    a, b = cluster.start_instance(), cluster.start_instance()
    async with (
        AsClient(a.url, "as-1") as app,
        UeClient(coap(b), "ue-1", params=FAST) as ue,
        httpx.AsyncClient(base_url=b.url, http2=True, http1=False) as http,
    ):
        await app.register()

        async def a_knows(ue_id: str) -> bool:
            # Stored for a registered UE that is not observing; refused for an unknown one.
            probe = f"probe-{time.monotonic()}"
            ack = await app.send(f"UE:{ue_id}", "probe", msg_id=probe, store=True)
            return ack.get("status") != "DELY_FAILED"

        await ue.register()
        await eventually(lambda: a_knows("ue-1"))
        registered = await http.post(
            "/ext-gwueregistration/v1/registrations",
            json={"gwType": "N3G", "gwApiRoot": "http://127.0.0.1:9", "ueSvcIds": ["m-1", "m-2"]},
        )
        assert registered.status_code in (200, 201), registered.text
        await eventually(lambda: a_knows("m-2"))
        await ue.deregister()

        async def a_forgot_ue_1() -> bool:
            return not await a_knows("ue-1")

        await eventually(a_forgot_ue_1)
    refreshes = metrics(a)["msgin5g_cluster_registry_refreshes_total"]
    assert refreshes >= 2  # at least one per change, changes close together may share one
    # The only whole reloads at A are of the AS registry (its own registration came back).
    reloads = metrics(a)["msgin5g_cluster_registry_reloads_total"]
    assert reloads <= 1


async def test_a_delivery_in_flight_at_one_instance_is_not_expired_by_the_other(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Every instance sweeps expired deliveries, but only the owner of a recipient (who alone
    hands over to it) does so at once; the others wait out the longest hand-over. Before, the
    other instance expired a delivery that the owner was handing over right then: the AS got
    the message and its originator a failure report for the same message (ADR 0018)."""
    cluster.env = {
        "MSGIN5G_DELIVERY_FORWARD_WINDOW_S": "1",  # stoAndFwInd false: 1 s to hand it over
        "MSGIN5G_DELIVERY_CALLBACK_TIMEOUT_S": "8",
    }
    a, b = cluster.start_instance(), cluster.start_instance()
    slow = Receiver(tmp_path / "slow.jsonl", "h2c", delay=3.0).start()  # answers after expiry
    reports = Receiver(tmp_path / "reports.jsonl", "h2c").start()
    try:
        async with AsClient(a.url, "as-0") as sender, AsClient(a.url, "as-1") as receiver:
            await sender.register(target_uri=reports.url)
            await receiver.register(target_uri=slow.url)

            async def b_knows_both() -> bool:
                text = (await asyncio.to_thread(httpx.get, f"{b.url}/metrics")).text
                return "msgin5g_as_registrations 2" in text

            await eventually(b_knows_both)  # whichever instance owns as-1 can deliver
            for n in range(3):
                ack = await sender.send("AS:as-1", f"slow {n}", msg_id=f"slow-{n}", report=True)
                assert ack.get("status") != "DELY_FAILED", ack
            await asyncio.to_thread(slow.wait_for, 1, 15.0)
            await asyncio.sleep(3 * 3.0 + 2.0)  # all three answered, the sweeps have run
        delivered = [r["body"]["msgId"] for r in bodies_of(slow)]
        failed = [r["msgId"] for r in bodies(reports, "/cb/deliver-report")]
        # Each message either reached the AS (handed over before it expired) or was reported
        # expired, never both.
        assert not set(delivered) & set(failed), (delivered, failed)
        assert delivered, "the first one was handed over before it expired"
        assert sorted(set(delivered) | set(failed)) == ["slow-0", "slow-1", "slow-2"]
    finally:
        slow.stop()
        reports.stop()


def bodies_of(receiver: Receiver) -> list[Json]:
    return [r for r in receiver.received() if r["path"] == "/cb/deliver-message"]


async def test_work_whose_doorbell_was_lost_is_found_by_the_next_rescan(
    cluster: Cluster, nats_server: NatsServer, tmp_path: Path
) -> None:
    """With NATS gone no doorbell rings, yet what either instance accepts reaches the AS: the
    owner's periodic rescan (every second here) reads the work stored since its last scans,
    without reading all stored work each time (ADR 0018)."""
    a, b = cluster.start_instance(), cluster.start_instance()
    receiver = Receiver(tmp_path / "as.jsonl", "h2c").start()
    try:
        async with AsClient(a.url, "as-1") as app, AsClient(b.url, "as-0") as other:
            await app.register(target_uri=receiver.url)

            async def both_know() -> bool:
                text = (await asyncio.to_thread(httpx.get, f"{b.url}/metrics")).text
                return "msgin5g_as_registrations 1" in text

            await eventually(both_know)

            async def first_scans_done() -> bool:  # the first periodic scan reads everything
                return all(metrics(s)["msgin5g_cluster_rescans_full_total"] >= 1 for s in (a, b))

            await eventually(first_scans_done)
            nats_server.stop()
            # Five through each instance, one after the other: one of the two holds as-1's
            # shard and delivers at once, the other's five wait for the owner's rescan.
            for sender, first in ((app, 0), (other, 5)):
                for n in range(first, first + 5):
                    ack = await sender.send("AS:as-1", f"m-{n}", msg_id=f"m-{n}", store=True)
                    assert ack.get("status") != "DELY_FAILED", ack
                got = await asyncio.to_thread(receiver.wait_for, first + 5, 15.0)
        ids = sorted(str(g["body"]["msgId"]) for g in got)  # type: ignore[index]
        assert ids == sorted(f"m-{n}" for n in range(10))
        recent = sum(metrics(s)["msgin5g_cluster_rescans_recent_total"] for s in (a, b))
        assert recent >= 1
    finally:
        receiver.stop()


async def test_registrations_elsewhere_wake_their_lanes_without_a_full_rescan(
    cluster: Cluster, tmp_path: Path
) -> None:
    """An AS registration (or a group) made at one instance makes the others reload that (small)
    registry and wake just what changed, if they run it, instead of reading every recipient
    with stored work (1.36 s at a million stored deliveries, docs/benchmarks.md)."""
    a, b = cluster.start_instance(), cluster.start_instance()
    receiver = Receiver(tmp_path / "as.jsonl", "h2c").start()

    async def settled() -> bool:
        held = [metrics(s).get("msgin5g_cluster_shards_held", 0) for s in (a, b)]
        return sum(held) == 64 and all(h > 0 for h in held)

    try:
        await eventually(settled)
        await asyncio.sleep(1.0)  # the gains of the start-up have been scanned
        full_before = [metrics(s)["msgin5g_cluster_rescans_full_total"] for s in (a, b)]
        async with AsClient(a.url, "as-1") as app, AsClient(b.url, "as-0") as sender:
            await app.register()  # no targetUri: messages for it are stored
            await sender.register()

            async def b_knows() -> bool:
                text = (await asyncio.to_thread(httpx.get, f"{b.url}/metrics")).text
                return "msgin5g_as_registrations 2" in text

            await eventually(b_knows)
            for n in range(4):  # accepted at both instances, stored for as-1
                client = sender if n % 2 else app
                ack = await client.send("AS:as-1", f"m-{n}", msg_id=f"m-{n}", store=True)
                assert ack.get("status") == "DELY_STORED", ack
            await app.register(target_uri=receiver.url)  # now reachable: whoever runs it sends
            got = await asyncio.to_thread(receiver.wait_for, 4, 15.0)
            # A group made at B: A reloads the groups and wakes that group only.
            async with httpx.AsyncClient(base_url=b.url, http2=True, http1=False) as hb:
                members = [{"addrType": "AS", "addr": "as-1"}]
                put = await hb.put("/ext-groups/v1/groups/crew", json={"members": members})
                assert put.status_code in (200, 201), put.text
            async with httpx.AsyncClient(base_url=a.url, http2=True, http1=False) as ha:

                async def a_knows_group() -> bool:
                    return (await ha.get("/ext-groups/v1/groups/crew")).status_code == 200

                await eventually(a_knows_group)
        assert sorted(str(g["body"]["msgId"]) for g in got) == [f"m-{n}" for n in range(4)]  # type: ignore[index]
        full_after = [metrics(s)["msgin5g_cluster_rescans_full_total"] for s in (a, b)]
        assert full_after == full_before, "a registration read every recipient's work"
    finally:
        receiver.stop()
