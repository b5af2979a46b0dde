# SPDX-License-Identifier: Apache-2.0
"""The MSGin5G-8 link with authentication on (ADR 0013, ADR 0015): two server processes, the
first the token issuer, the second trusting its JWKS. Each presents its own client credentials
to the other: forwarded messages, reports and topic-list subscriptions cross with tokens, and
a peer's token speaks only for that peer's users."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from msgin5g.security.passwords import hash_secret
from tests.support.procs import Receiver, ServerProcess

pytestmark = pytest.mark.e2e

SECRETS = {
    "plmn1": "plmn1-secret-0123456789",
    "plmn2": "plmn2-secret-0123456789",
    "app1": "app1-secret-0123456789",
    "gw2": "gw2-secret-0123456789",
}


def clients() -> str:
    def client(client_id: str, role: str, extra: str) -> str:
        return (
            "[[auth.clients]]\n"
            f'client_id = "{client_id}"\nrole = "{role}"\n'
            f'secret_hash = "{hash_secret(SECRETS[client_id])}"\n{extra}'
        )

    return "".join(
        (
            client("plmn1", "PEER", 'addresses = ["PEER:plmn1", "UE:*@plmn1", "AS:plmn1-*"]\n'),
            client("plmn2", "PEER", 'addresses = ["PEER:plmn2", "UE:*@plmn2", "AS:plmn2-*"]\n'),
            client("app1", "AS", 'as_svc_ids = ["plmn1-app"]\n'),
            client("gw2", "GATEWAY", 'addresses = ["UE:*@plmn2"]\n'),
        )
    )


def config(path: Path, own: str, peer: str, peer_url: str, issuer_url: str, mode: str) -> Path:
    patterns = f'["UE:*@{peer}", "AS:{peer}-*"]'
    jwks = f'jwks = "{issuer_url}/oauth2/jwks"\n' if mode == "jwks" else ""
    path.write_text(
        f'[auth]\nmode = "{mode}"\naudience = "msgin5g-link"\n{jwks}'
        f'token_url = "{issuer_url}/oauth2/token"\nclient_id = "{own}"\n'
        f'client_secret = "{SECRETS[own]}"\n'
        f'[peering]\nname = "{own}"\n'
        f'[[peering.peers]]\nname = "{peer}"\napi_root = "{peer_url}"\naddresses = {patterns}\n'
        + clients()
    )
    return path


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    s1 = ServerProcess(tmp_path / "s1" / "data")
    s2 = ServerProcess(tmp_path / "s2" / "data")
    for server in (s1, s2):
        server.data_dir.parent.mkdir(parents=True)
    s1.env = {
        "MSGIN5G_CONFIG": str(
            config(tmp_path / "s1" / "c.toml", "plmn1", "plmn2", s2.url, s1.url, "builtin")
        )
    }
    s2.env = {
        "MSGIN5G_CONFIG": str(
            config(tmp_path / "s2" / "c.toml", "plmn2", "plmn1", s1.url, s1.url, "jwks")
        )
    }
    s1.start()
    s2.start()
    try:
        yield s1, s2
    finally:
        s1.stop()
        s2.stop()


async def token(http: httpx.AsyncClient, client_id: str) -> dict[str, str]:
    r = await http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, SECRETS[client_id]),
    )
    assert r.status_code == 200, r.text
    return {"authorization": f"Bearer {r.json()['access_token']}"}


def address(kind: str, value: str) -> dict[str, str]:
    return {"addrType": kind, "addr": value}


async def test_peers_authenticate_each_other_and_speak_only_for_their_users(
    servers: tuple[ServerProcess, ServerProcess], tmp_path: Path
) -> None:
    s1, s2 = servers
    app1 = Receiver(tmp_path / "app1.jsonl", "h2c").start()
    gw2 = Receiver(tmp_path / "gw2.jsonl", "h1").start()
    try:
        async with (
            httpx.AsyncClient(base_url=s1.url, http1=False, http2=True) as h1,
            httpx.AsyncClient(base_url=s2.url, http1=False, http2=True) as h2,
        ):
            app = await token(h1, "app1")
            gateway = await token(h1, "gw2")
            as_peer2 = await token(h1, "plmn2")
            r = await h1.post(
                "/msgs-asregistration/v1/registrations",
                json={"asSvcId": "plmn1-app", "targetUri": app1.url},
                headers=app,
            )
            assert r.status_code == 201, r.text
            r = await h2.post(
                "/ext-gwueregistration/v1/registrations",
                json={
                    "gwType": "L3G",
                    "gwApiRoot": f"http://127.0.0.1:{gw2.port}",
                    "ueSvcIds": ["dev@plmn2"],
                },
                headers=gateway,
            )
            assert r.status_code == 201, r.text

            # Each server follows the other's topic list with its own token.
            deadline = time.monotonic() + 15
            while True:
                views = [
                    (await h.get("/ext-peering/v1/peers", headers=as_peer2)).json()
                    for h in (h1, h2)
                ]
                if all(v[0]["topicListSubscription"] for v in views):
                    break
                assert time.monotonic() < deadline, views
                await asyncio.sleep(0.1)

            # AS on S1 -> UE on S2: forwarded with plmn1's token; the report comes back with
            # plmn2's.
            ack = await h1.post(
                "/msgs-msgdelivery/v1/deliver-as-message",
                json={
                    "oriAddr": address("AS", "plmn1-app"),
                    "destAddr": address("UE", "dev@plmn2"),
                    "msgId": "sec-1",
                    "payload": "over an authenticated link",
                    "stoAndFwInd": True,
                    "delivStReqInd": True,
                },
                headers=app,
            )
            assert ack.status_code == 200, ack.text
            assert "status" not in ack.json(), ack.text
            (got,) = await asyncio.to_thread(gw2.wait_for, 1)
            assert got["body"]["payload"] == "over an authenticated link"  # type: ignore[index]
            r = await h2.post(
                "/msgs-msgdelivery/v1/deliver-report",
                json={
                    "oriAddr": address("UE", "dev@plmn2"),
                    "destAddr": address("AS", "plmn1-app"),
                    "msgId": "sec-1",
                    "delivSt": "REPT_DELY_SUCCESS",
                },
                headers=gateway,
            )
            assert r.status_code == 200, r.text
            (report,) = await asyncio.to_thread(app1.wait_for, 1)
            assert report["path"] == "/cb/deliver-report"

            # plmn2's token speaks for plmn2's users only: not for S1's AS, not for a third
            # network, and not without a token at all.
            for origin in (address("AS", "plmn1-app"), address("AS", "plmn3-x")):
                r = await h1.post(
                    "/msgs-msgdelivery/v1/deliver-as-message",
                    json={
                        "oriAddr": origin,
                        "destAddr": address("AS", "plmn1-app"),
                        "msgId": "spoof",
                        "stoAndFwInd": True,
                    },
                    headers=as_peer2,
                )
                assert r.status_code == 403, r.text
                assert r.json()["cause"] == "UNAUTHORIZED_ORIGINATOR"
            r = await h1.post(
                "/ext-peering/v1/topiclist-notifications/plmn1",
                json={"msgTopics": [{"msgTopic": "fake", "updateStat": "CREATED"}]},
                headers=as_peer2,
            )
            assert r.status_code in (403, 404), r.text
            r = await h1.post(
                "/msgs-msgdelivery/v1/deliver-as-message",
                json={
                    "oriAddr": address("AS", "plmn2-app"),
                    "destAddr": address("AS", "plmn1-app"),
                    "msgId": "anon",
                    "stoAndFwInd": True,
                },
            )
            assert r.status_code == 401
        await asyncio.sleep(0.3)
        assert len(app1.received()) == 1  # nothing spoofed got through
        assert all(secret not in s1.log() + s2.log() for secret in SECRETS.values())
    finally:
        app1.stop()
        gw2.stop()
