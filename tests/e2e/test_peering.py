# SPDX-License-Identifier: Apache-2.0
"""Interconnected servers (TS 23.554 8.7.5, 8.8.4; MSGin5G-8; ADR 0013): two real server
processes, each configured with the other as a peer. A message to a user homed on the peer is
forwarded there and its report comes back; a topic message reaches the subscribers of both
servers, wherever it was published; a group spanning both servers reaches every member; a
message a peer forwarded is never forwarded again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.procs import Receiver, ServerProcess

pytestmark = pytest.mark.e2e

DELIVER_AS = "/msgs-msgdelivery/v1/deliver-as-message"
DELIVER_UE = "/msgs-msgdelivery/v1/deliver-ue-message"
REPORT = "/msgs-msgdelivery/v1/deliver-report"
TOPICS = "/msgs-topiclistevent/v1"
L3G_DELIVER = "/msgg-l3gdelivery/v1/deliver-message"


def address(kind: str, value: str) -> dict[str, str]:
    return {"addrType": kind, "addr": value}


def peering_config(path: Path, own: str, peer: str, peer_url: str, patterns: list[str]) -> Path:
    quoted = ", ".join(f'"{p}"' for p in patterns)
    path.write_text(
        f"""
[peering]
name = "{own}"
refresh_s = 300

[[peering.peers]]
name = "{peer}"
api_root = "{peer_url}"
addresses = [{quoted}]
topics = true
"""
    )
    return path


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    s1 = ServerProcess(tmp_path / "s1" / "data")
    s2 = ServerProcess(tmp_path / "s2" / "data")
    for server in (s1, s2):
        server.data_dir.parent.mkdir(parents=True)
    c1 = peering_config(
        tmp_path / "s1" / "msgin5g.toml", "plmn1", "plmn2", s2.url, ["UE:*@plmn2", "AS:plmn2-*"]
    )
    c2 = peering_config(
        tmp_path / "s2" / "msgin5g.toml", "plmn2", "plmn1", s1.url, ["UE:*@plmn1", "AS:plmn1-*"]
    )
    s1.env = {"MSGIN5G_CONFIG": str(c1)}
    s2.env = {"MSGIN5G_CONFIG": str(c2)}
    s1.start()
    s2.start()
    try:
        yield s1, s2
    finally:
        s1.stop()
        s2.stop()


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[dict[str, Receiver]]:
    started = {
        name: Receiver(tmp_path / f"{name}.jsonl", mode).start()
        for name, mode in (("app1", "h2c"), ("reader1", "h1"), ("gw2", "h1"), ("app2", "h2c"))
    }
    try:
        yield started
    finally:
        for r in started.values():
            r.stop()


async def register_as(http: httpx.AsyncClient, as_id: str, target: str) -> None:
    r = await http.post(
        "/msgs-asregistration/v1/registrations", json={"asSvcId": as_id, "targetUri": target}
    )
    assert r.status_code == 201, r.text


async def register_gateway_ues(http: httpx.AsyncClient, gateway: Receiver, ues: list[str]) -> None:
    r = await http.post(
        "/ext-gwueregistration/v1/registrations",
        json={"gwType": "L3G", "gwApiRoot": f"http://127.0.0.1:{gateway.port}", "ueSvcIds": ues},
    )
    assert r.status_code == 201, r.text


async def wait_peer_topic(http: httpx.AsyncClient, peer: str, topic: str) -> None:
    """Until this server heard from `peer`'s topic list that it has `topic`."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        listed = (await http.get("/ext-peering/v1/peers")).json()
        known = {p["name"]: p for p in listed}
        if topic in known[peer]["topics"]:
            assert known[peer]["topicListSubscription"]
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{peer} never announced {topic}: {listed}")


def bodies(receiver: Receiver, path_end: str) -> list[dict[str, object]]:
    return [r["body"] for r in receiver.received() if str(r["path"]).endswith(path_end)]  # type: ignore[misc]


async def test_message_to_a_peer_user_is_forwarded_and_the_report_comes_back(
    servers: tuple[ServerProcess, ServerProcess], receivers: dict[str, Receiver]
) -> None:
    s1, s2 = servers
    app1, gw2 = receivers["app1"], receivers["gw2"]
    async with (
        httpx.AsyncClient(base_url=s1.url, http1=False, http2=True) as h1,
        httpx.AsyncClient(base_url=s2.url, http1=False, http2=True) as h2,
    ):
        await register_as(h1, "plmn1-app", app1.url)
        await register_gateway_ues(h2, gw2, ["dev@plmn2"])

        # A2P across the interconnection (8.7.5 steps 1-3).
        ack = await h1.post(
            DELIVER_AS,
            json={
                "oriAddr": address("AS", "plmn1-app"),
                "destAddr": address("UE", "dev@plmn2"),
                "msgId": "x-1",
                "payload": "to the other network",
                "stoAndFwInd": True,
                "delivStReqInd": True,
                "priority": "HIGH",
            },
        )
        assert ack.json() == {"oriAddr": address("AS", "plmn1-app"), "msgId": "x-1"}
        (delivered,) = await asyncio.to_thread(gw2.wait_for, 1)
        assert delivered["path"] == L3G_DELIVER
        body = delivered["body"]
        assert body["oriAddr"] == address("AS", "plmn1-app")  # type: ignore[index]
        assert body["destAddr"] == address("UE", "dev@plmn2")  # type: ignore[index]
        assert body["payload"] == "to the other network"  # type: ignore[index]
        assert body["delivStReqInd"] is True  # type: ignore[index]

        # The report travels back: UE -> S2 -> S1 -> AS (8.7.5 steps 4-6).
        r = await h2.post(
            REPORT,
            json={
                "oriAddr": address("UE", "dev@plmn2"),
                "destAddr": address("AS", "plmn1-app"),
                "msgId": "x-1",
                "delivSt": "REPT_DELY_SUCCESS",
            },
        )
        assert r.status_code == 200, r.text
        assert "status" not in r.json(), r.text
        (report,) = await asyncio.to_thread(app1.wait_for, 1)
        assert report["path"] == "/cb/deliver-report"
        assert report["body"] == {
            "oriAddr": address("UE", "dev@plmn2"),
            "destAddr": address("AS", "plmn1-app"),
            "msgId": "x-1",
            "delivSt": "REPT_DELY_SUCCESS",
        }

        # P2A the other way: the UE's gateway hands S2 a message for the AS homed on S1.
        r = await h2.post(
            DELIVER_UE,
            json={
                "oriAddr": address("UE", "dev@plmn2"),
                "destAddr": address("AS", "plmn1-app"),
                "msgId": "up-1",
                "payload": "reading 42",
                "stoAndFwInd": True,
            },
        )
        assert "status" not in r.json(), r.text
        got = await asyncio.to_thread(app1.wait_for, 2)
        assert got[1]["path"] == "/cb/deliver-message"
        assert got[1]["body"]["payload"] == "reading 42"  # type: ignore[index]
        assert got[1]["body"]["oriAddr"] == address("UE", "dev@plmn2")  # type: ignore[index]

        # A user the peer does not know: S2 refuses, S1 reports the failure to the sender.
        ack = await h1.post(
            DELIVER_AS,
            json={
                "oriAddr": address("AS", "plmn1-app"),
                "destAddr": address("UE", "ghost@plmn2"),
                "msgId": "x-2",
                "stoAndFwInd": True,
                "delivStReqInd": True,
            },
        )
        assert "status" not in ack.json()
        got = await asyncio.to_thread(app1.wait_for, 3)
        failure = got[2]["body"]
        assert got[2]["path"] == "/cb/deliver-report"
        assert failure["delivSt"] == "REPT_DELY_FAILED"  # type: ignore[index]
        assert "UNKNOWN_RECIPIENT" in failure["failureCause"]  # type: ignore[index]

        # A message from a peer's user is delivered only to this server's own users: S2 does
        # not send a plmn1 user's message back to plmn1 (at most one server-to-server hop).
        bounced = await h2.post(
            DELIVER_AS,
            json={
                "oriAddr": address("AS", "plmn1-app"),
                "destAddr": address("UE", "other@plmn1"),
                "msgId": "x-3",
                "stoAndFwInd": True,
            },
        )
        assert bounced.json()["status"] == "DELY_FAILED"
        assert bounced.json()["failureCause"].startswith("UNKNOWN_RECIPIENT")
        await asyncio.sleep(0.3)
        assert len(gw2.received()) == 1


async def test_topic_message_reaches_subscribers_on_both_servers(
    servers: tuple[ServerProcess, ServerProcess], receivers: dict[str, Receiver]
) -> None:
    s1, s2 = servers
    app1, reader1, gw2, app2 = (receivers[n] for n in ("app1", "reader1", "gw2", "app2"))
    async with (
        httpx.AsyncClient(base_url=s1.url, http1=False, http2=True) as h1,
        httpx.AsyncClient(base_url=s2.url, http1=False, http2=True) as h2,
    ):
        await register_as(h1, "plmn1-pub", app1.url)
        await register_as(h1, "plmn1-reader", reader1.url)
        await register_as(h2, "plmn2-pub", app2.url)
        await register_gateway_ues(h2, gw2, ["dev@plmn2"])
        for http, subscriber in (
            (h1, address("AS", "plmn1-reader")),
            (h2, address("UE", "dev@plmn2")),
        ):
            r = await http.post(
                f"{TOPICS}/request-topic-subscription",
                json={"oriAddr": subscriber, "msgTopics": ["weather"]},
            )
            assert r.status_code == 200, r.text
        # Each server learns from the other's topic list that it has subscribers too.
        await wait_peer_topic(h1, "plmn2", "weather")
        await wait_peer_topic(h2, "plmn1", "weather")

        # Published on S1: S1's subscriber and, through S2, S2's subscriber; both report.
        ack = await h1.post(
            DELIVER_AS,
            json={
                "oriAddr": address("AS", "plmn1-pub"),
                "destAddr": address("TOPIC", "weather"),
                "msgId": "w-1",
                "payload": "rain",
                "stoAndFwInd": True,
                "delivStReqInd": True,
            },
        )
        assert "status" not in ack.json(), ack.text
        (local,) = await asyncio.to_thread(reader1.wait_for, 1)
        assert local["body"]["payload"] == "rain"  # type: ignore[index]
        (remote,) = await asyncio.to_thread(gw2.wait_for, 1)
        assert remote["path"] == L3G_DELIVER
        assert remote["body"]["payload"] == "rain"  # type: ignore[index]
        assert remote["body"]["destAddr"] == address("UE", "dev@plmn2")  # type: ignore[index]
        assert remote["body"]["oriAddr"] == address("AS", "plmn1-pub")  # type: ignore[index]
        for http, reporter in (
            (h1, address("AS", "plmn1-reader")),
            (h2, address("UE", "dev@plmn2")),
        ):
            r = await http.post(
                REPORT,
                json={
                    "oriAddr": reporter,
                    "destAddr": address("AS", "plmn1-pub"),
                    "msgId": "w-1",
                    "delivSt": "REPT_DELY_SUCCESS",
                },
            )
            assert "status" not in r.json(), r.text
        await asyncio.to_thread(app1.wait_for, 2)
        await asyncio.sleep(0.3)
        reporters = sorted(b["oriAddr"]["addr"] for b in bodies(app1, "/deliver-report"))  # type: ignore[index]
        assert reporters == ["dev@plmn2", "plmn1-reader"]

        # Published on S2: the same two subscribers, each once.
        ack = await h2.post(
            DELIVER_AS,
            json={
                "oriAddr": address("AS", "plmn2-pub"),
                "destAddr": address("TOPIC", "weather"),
                "msgId": "w-2",
                "payload": "sun",
                "stoAndFwInd": True,
            },
        )
        assert "status" not in ack.json(), ack.text
        await asyncio.to_thread(reader1.wait_for, 2)
        await asyncio.to_thread(gw2.wait_for, 2)
        await asyncio.sleep(0.5)
        assert [b["payload"] for b in bodies(reader1, "/deliver-message")] == ["rain", "sun"]  # type: ignore[index]
        assert [b["payload"] for b in bodies(gw2, "/deliver-message")] == ["rain", "sun"]  # type: ignore[index]

        # S2's subscriber leaves: S1 hears DELETED and stops sending S2 copies.
        r = await h2.post(
            f"{TOPICS}/request-topic-unsubscription",
            json={"oriAddr": address("UE", "dev@plmn2"), "msgTopics": ["weather"]},
        )
        assert r.status_code == 204
        deadline = time.monotonic() + 10
        while "weather" in (await h1.get("/ext-peering/v1/peers")).json()[0]["topics"]:
            assert time.monotonic() < deadline, "S1 never heard that S2 lost the topic"
            await asyncio.sleep(0.1)
        ack = await h1.post(
            DELIVER_AS,
            json={
                "oriAddr": address("AS", "plmn1-pub"),
                "destAddr": address("TOPIC", "weather"),
                "msgId": "w-3",
                "payload": "fog",
                "stoAndFwInd": True,
            },
        )
        await asyncio.to_thread(reader1.wait_for, 3)
        await asyncio.sleep(0.5)
        assert len(bodies(gw2, "/deliver-message")) == 2


async def test_group_spanning_two_servers_reaches_every_member(
    servers: tuple[ServerProcess, ServerProcess], receivers: dict[str, Receiver]
) -> None:
    s1, s2 = servers
    app1, reader1, gw2 = receivers["app1"], receivers["reader1"], receivers["gw2"]
    async with (
        httpx.AsyncClient(base_url=s1.url, http1=False, http2=True) as h1,
        httpx.AsyncClient(base_url=s2.url, http1=False, http2=True) as h2,
    ):
        await register_as(h1, "plmn1-app", app1.url)
        await register_as(h1, "plmn1-reader", reader1.url)
        await register_gateway_ues(h2, gw2, ["a@plmn2", "b@plmn2"])
        members = [
            address("AS", "plmn1-reader"),
            address("UE", "a@plmn2"),
            address("UE", "b@plmn2"),
        ]
        r = await h1.put("/ext-groups/v1/groups/crew", json={"members": members})
        assert r.status_code in (200, 201), r.text

        ack = await h1.post(
            DELIVER_AS,
            json={
                "oriAddr": address("AS", "plmn1-app"),
                "destAddr": address("GROUP", "crew"),
                "msgId": "g-1",
                "payload": "all hands",
                "stoAndFwInd": True,
                "delivStReqInd": True,
            },
        )
        assert "status" not in ack.json(), ack.text
        await asyncio.to_thread(reader1.wait_for, 1)
        await asyncio.to_thread(gw2.wait_for, 2)
        await asyncio.sleep(0.3)
        assert sorted(b["destAddr"]["addr"] for b in bodies(gw2, "/deliver-message")) == [  # type: ignore[index]
            "a@plmn2",
            "b@plmn2",
        ]
        # Each member on S2 reports through S2; the sender gets one report per member.
        for member in ("a@plmn2", "b@plmn2"):
            r = await h2.post(
                REPORT,
                json={
                    "oriAddr": address("UE", member),
                    "destAddr": address("AS", "plmn1-app"),
                    "msgId": "g-1",
                    "delivSt": "REPT_DELY_SUCCESS",
                },
            )
            assert "status" not in r.json(), r.text
        await asyncio.to_thread(app1.wait_for, 2)
        await asyncio.sleep(0.3)
        reporters = sorted(b["oriAddr"]["addr"] for b in bodies(app1, "/deliver-report"))  # type: ignore[index]
        assert reporters == ["a@plmn2", "b@plmn2"]
