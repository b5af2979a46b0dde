# SPDX-License-Identifier: Apache-2.0
"""Authorization rules (ADR 0015), each with real tokens: an AS sends and registers only as its
granted asSvcIds, deregisters only its own registration and reports only as itself on messages
addressed to it; a gateway speaks only for its own UEs; groups are for administrators."""

from __future__ import annotations

from typing import Any

import httpx

from msgin5g.bootstrap import ServerApp
from msgin5g.core.message import AS, UE, Address
from tests.security.conftest import Issuer, as_message, bearer

DELIVER = "/msgs-msgdelivery/v1/deliver-as-message"
DELIVER_UE = "/msgs-msgdelivery/v1/deliver-ue-message"
REPORT = "/msgs-msgdelivery/v1/deliver-report"
REGISTER = "/msgs-asregistration/v1/registrations"
GW_REGISTER = "/ext-gwueregistration/v1/registrations"
TARGET = "http://127.0.0.1:9/callback"


def forbidden(response: httpx.Response, cause: str) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["cause"] == cause


async def register(api: httpx.AsyncClient, token: str, as_svc_id: str) -> httpx.Response:
    body = {"asSvcId": as_svc_id, "targetUri": TARGET}
    return await api.post(REGISTER, json=body, headers=bearer(token))


async def test_an_as_may_send_only_as_its_own_as_svc_id(
    api: httpx.AsyncClient, issuer: Issuer, server_app: ServerApp
) -> None:
    token = issuer.mint("as2", "msgs-msgdelivery")
    spoofed = await api.post(
        DELIVER, json=as_message("as1", ("UE", "u1"), "m-1"), headers=bearer(token)
    )
    forbidden(spoofed, "UNAUTHORIZED_ORIGINATOR")
    assert await server_app.store.find_message(Address(AS, "as1"), "m-1") is None
    own = await api.post(
        DELIVER, json=as_message("as2", ("UE", "u1"), "m-1"), headers=bearer(token)
    )
    assert own.status_code == 200, own.text


async def test_an_as_may_register_only_its_granted_as_svc_ids(
    api: httpx.AsyncClient, issuer: Issuer, server_app: ServerApp
) -> None:
    token = issuer.mint("as1", "msgs-asregistration")
    forbidden(await register(api, token, "as2"), "UNAUTHORIZED_AS_SERVICE")
    assert server_app.registry.get("as2") is None
    assert (await register(api, token, "as1")).status_code == 201
    assert server_app.registry.get("as1") is not None


async def test_an_as_may_deregister_only_its_own_registration(
    api: httpx.AsyncClient, issuer: Issuer, server_app: ServerApp
) -> None:
    as1 = issuer.mint("as1", "msgs-asregistration")
    as2 = issuer.mint("as2", "msgs-asregistration")
    location = (await register(api, as1, "as1")).headers["location"]
    path = httpx.URL(location).path
    forbidden(await api.delete(path, headers=bearer(as2)), "NOT_OWNER")
    assert server_app.registry.get("as1") is not None
    assert (await api.delete(path, headers=bearer(as1))).status_code == 204
    assert server_app.registry.get("as1") is None


async def test_an_admin_may_deregister_any_registration(
    api: httpx.AsyncClient, plain: httpx.AsyncClient, issuer: Issuer, server_app: ServerApp
) -> None:
    location = (await register(api, issuer.mint("as1", "msgs-asregistration"), "as1")).headers[
        "location"
    ]
    admin = issuer.mint("ops", "msgs-asregistration")
    assert (await api.delete(httpx.URL(location).path, headers=bearer(admin))).status_code == 204


def report(reporter: str, sender: str, msg_id: str) -> dict[str, Any]:
    return {
        "oriAddr": {"addrType": "AS", "addr": reporter},
        "destAddr": {"addrType": "AS", "addr": sender},
        "msgId": msg_id,
        "delivSt": "REPT_DELY_SUCCESS",
    }


async def test_reports_only_as_itself_on_messages_addressed_to_it(
    api: httpx.AsyncClient, issuer: Issuer
) -> None:
    as1 = issuer.mint("as1", "msgs-asregistration msgs-msgdelivery")
    as2 = issuer.mint("as2", "msgs-asregistration msgs-msgdelivery")
    assert (await register(api, as1, "as1")).status_code == 201
    assert (await register(api, as2, "as2")).status_code == 201
    message = {**as_message("as2", ("AS", "as1"), "m-7"), "delivStReqInd": True}
    sent = await api.post(DELIVER, json=message, headers=bearer(as2))
    assert sent.status_code == 200
    # as2 pretends to be the recipient as1: refused before anything is looked up.
    spoofed = await api.post(REPORT, json=report("as1", "as2", "m-7"), headers=bearer(as2))
    forbidden(spoofed, "UNAUTHORIZED_REPORTER")
    # A third party reporting as itself on a message not addressed to it: no report is made.
    third = await api.post(REPORT, json=report("as2", "as2", "m-7"), headers=bearer(as2))
    assert third.status_code == 200
    assert third.json()["status"] == "DELY_FAILED"
    assert third.json()["failureCause"].startswith("NOT_A_RECIPIENT")
    # The recipient itself may report.
    own = await api.post(REPORT, json=report("as1", "as2", "m-7"), headers=bearer(as1))
    assert own.status_code == 200, own.text
    assert own.json().get("status") != "DELY_FAILED", own.json()
    assert "failureCause" not in own.json()


def gw_body(*ues: str, gw: str = "http://127.0.0.1:9/gw") -> dict[str, Any]:
    return {"gwType": "N3G", "gwApiRoot": gw, "ueSvcIds": list(ues)}


async def test_a_gateway_registers_only_its_own_ues(
    plain: httpx.AsyncClient, issuer: Issuer, server_app: ServerApp
) -> None:
    gw1 = issuer.mint("gw1", "ext-gwueregistration")
    response = await plain.post(GW_REGISTER, json=gw_body("gw1-a", "gw2-a"), headers=bearer(gw1))
    forbidden(response, "UNAUTHORIZED_UE")
    assert server_app.ue_registry.get("gw1-a") is None  # all or nothing
    response = await plain.post(GW_REGISTER, json=gw_body("gw1-a", "gw1-b"), headers=bearer(gw1))
    assert response.status_code == 201, response.text
    assert server_app.ue_registry.get("gw1-b") is not None


async def test_a_gateway_deregisters_only_its_own_ues(
    plain: httpx.AsyncClient, issuer: Issuer, server_app: ServerApp
) -> None:
    gw1 = issuer.mint("gw1", "ext-gwueregistration")
    gw2 = issuer.mint("gw2", "ext-gwueregistration")
    created = await plain.post(GW_REGISTER, json=gw_body("gw1-a"), headers=bearer(gw1))
    registration_id = created.json()["registrations"][0]["registrationId"]
    path = f"{GW_REGISTER}/{registration_id}"
    forbidden(await plain.delete(path, headers=bearer(gw2)), "NOT_OWNER")
    assert server_app.ue_registry.get("gw1-a") is not None
    assert (await plain.delete(path, headers=bearer(gw1))).status_code == 204
    assert server_app.ue_registry.get("gw1-a") is None


def ue_message(ue: str, msg_id: str) -> dict[str, Any]:
    return {
        "oriAddr": {"addrType": "UE", "addr": ue},
        "destAddr": {"addrType": "AS", "addr": "as1"},
        "msgId": msg_id,
        "stoAndFwInd": True,
        "payload": "from a device",
    }


async def test_a_gateway_speaks_only_for_its_own_ues(
    api: httpx.AsyncClient, issuer: Issuer, server_app: ServerApp
) -> None:
    gw1 = issuer.mint("gw1", "msgs-msgdelivery")
    forbidden(
        await api.post(DELIVER_UE, json=ue_message("gw2-a", "u-1"), headers=bearer(gw1)),
        "UNAUTHORIZED_ORIGINATOR",
    )
    assert await server_app.store.find_message(Address(UE, "gw2-a"), "u-1") is None
    # A gateway is no AS either.
    forbidden(
        await api.post(DELIVER, json=as_message("as1", ("UE", "x"), "m-1"), headers=bearer(gw1)),
        "UNAUTHORIZED_ORIGINATOR",
    )
    own = await api.post(DELIVER_UE, json=ue_message("gw1-a", "u-2"), headers=bearer(gw1))
    assert own.status_code == 200, own.text


async def test_groups_are_managed_by_administrators_only(
    plain: httpx.AsyncClient, issuer: Issuer, server_app: ServerApp
) -> None:
    definition = {"members": [{"addrType": "UE", "addr": "u1"}]}
    path = "/ext-groups/v1/groups/g1"
    # Even with the scope granted by configuration, a non-admin role is refused.
    gw = issuer.mint("gw1", "ext-gwueregistration")
    assert (await plain.put(path, json=definition, headers=bearer(gw))).status_code == 403
    admin = issuer.mint("ops", "ext-groups")
    assert (await plain.put(path, json=definition, headers=bearer(admin))).status_code == 201
    assert (await plain.get(path, headers=bearer(admin))).status_code == 200
    assert server_app.groups.members("g1") is not None


async def test_topic_subscriptions_only_for_the_callers_own_address(
    api: httpx.AsyncClient, issuer: Issuer
) -> None:
    token = bearer(issuer.mint("as2", "msgs-topiclistevent"))
    path = "/msgs-topiclistevent/v1/request-topic-subscription"
    spoofed = {"oriAddr": {"addrType": "AS", "addr": "as1"}, "msgTopics": ["weather"]}
    forbidden(await api.post(path, json=spoofed, headers=token), "UNAUTHORIZED_ORIGINATOR")
    own = {"oriAddr": {"addrType": "AS", "addr": "as2"}, "msgTopics": ["weather"]}
    assert (await api.post(path, json=own, headers=token)).status_code == 200
