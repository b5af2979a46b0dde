# SPDX-License-Identifier: Apache-2.0
"""UEs over CoAP with DTLS-PSK (RFC 7252 §9.1.3.1) against a real server process, with
libcoap's coap-client-openssl as the independent UE (ADR 0016, docs/security.md): the right
key registers, observes and receives an AS message; a wrong key gets no session and registers
nothing; plain CoAP cannot act as a provisioned UE; a DTLS identity cannot act as another UE;
with ue.require_dtls the plain port refuses everything. coap-client exits 0 even on 4.xx, so
the tests read its -v 6 trace."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.procs import Receiver, ServerProcess, free_port

COAPS_CLIENT = shutil.which("coap-client-openssl") or shutil.which("coap-client-gnutls")
PLAIN_CLIENT = shutil.which("coap-client-notls") or COAPS_CLIENT

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(COAPS_CLIENT is None, reason="libcoap coap-client with DTLS missing"),
]

DELIVER = "/msgs-msgdelivery/v1/deliver-as-message"
REGISTER = "/msgs-asregistration/v1/registrations"
# identity -> (key, ueSvcId); keys as coap-client -k takes them (text).
UES = {"dev-1": ("k3y-of-dev-1", "ue-1"), "dev-2": ("k3y-of-dev-2", "ue-2")}
PSK_FILE = "".join(
    f'[[psk]]\nidentity = "{i}"\nkey = "{k}"\nue_svc_id = "{u}"\n\n' for i, (k, u) in UES.items()
)


class DtlsServer(ServerProcess):
    """A server process with a coaps port and the PSK file above."""

    coaps_port: int = 0


def start_server(tmp_path: Path, **env: str) -> DtlsServer:
    psk_file = tmp_path / "psks.toml"
    psk_file.write_text(PSK_FILE)
    coaps_port = free_port(socket.SOCK_DGRAM)
    proc = DtlsServer(
        tmp_path / "data",
        args=("--coaps", f"127.0.0.1:{coaps_port}"),
        env={
            "MSGIN5G_UE_PSK_FILE": str(psk_file),
            "MSGIN5G_UE_ACK_TIMEOUT_S": "0.5",
            **env,
        },
    )
    proc.coaps_port = coaps_port
    return proc.start()  # type: ignore[return-value]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[DtlsServer]:
    proc = start_server(tmp_path)
    try:
        yield proc
    finally:
        proc.stop()


def coaps_uri(server: DtlsServer, path: str) -> str:
    return f"coaps://127.0.0.1:{server.coaps_port}/msgin5g/v1/{path}"


def coap_uri(server: ServerProcess, path: str) -> str:
    return f"coap://127.0.0.1:{server.coap_port}/msgin5g/v1/{path}"


def psk(identity: str, key: str | None = None) -> tuple[str, ...]:
    return ("-u", identity, "-k", key if key is not None else UES[identity][0])


async def coap(client: str | None, *args: str) -> str:
    """One coap-client request with a -v 6 trace; returns the trace."""
    assert client is not None
    process = await asyncio.create_subprocess_exec(
        client,
        "-v",
        "6",
        "-B",
        "5",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(15):
        out, _ = await process.communicate()
    return out.decode(errors="replace")


def body(**fields: Any) -> tuple[str, ...]:
    return ("-m", "post", "-t", "50", "-e", json.dumps(fields))


async def register_over_dtls(server: DtlsServer, identity: str, ue: str) -> str:
    trace = await coap(
        COAPS_CLIENT,
        *psk(identity),
        *body(msgType="REG", ueSvcId=ue),
        coaps_uri(server, "registrations"),
    )
    assert "2.01" in trace, trace
    match = re.search(r'"regId":"([^"]+)"', trace)
    assert match, trace
    return match.group(1)


def answer_code(trace: str) -> str:
    """The code of the (last) response in a coap-client -v 6 trace, e.g. '4.03'."""
    codes = re.findall(r"t:(?:ACK|CON|NON) c:(\d\.\d\d)", trace)
    assert codes, trace
    return str(codes[-1])


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Receiver]:
    receiver = Receiver(tmp_path / "as.jsonl", "h2c").start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
async def http(server: DtlsServer, app: Receiver) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, http1=False, http2=True, timeout=10) as c:
        registered = await c.post(REGISTER, json={"asSvcId": "as-1", "targetUri": app.url})
        assert registered.status_code == 201
        yield c


async def test_dtls_ue_registers_observes_and_receives_an_as_message(
    server: DtlsServer, http: httpx.AsyncClient, app: Receiver, tmp_path: Path
) -> None:
    await register_over_dtls(server, "dev-1", "ue-1")
    out = tmp_path / "inbox.out"
    assert COAPS_CLIENT is not None
    observer = await asyncio.create_subprocess_exec(
        COAPS_CLIENT,
        "-v",
        "6",
        "-B",
        "5",
        *psk("dev-1"),
        "-m",
        "get",
        "-s",
        "8",
        "-o",
        str(out),
        coaps_uri(server, "ues/ue-1/inbox"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        sent: dict[str, Any] = {
            "oriAddr": {"addrType": "AS", "addr": "as-1"},
            "destAddr": {"addrType": "UE", "addr": "ue-1"},
            "msgId": str(uuid.uuid4()),
            "payload": "over DTLS ✓",
            "stoAndFwInd": True,
        }
        for _ in range(100):  # until the observation is in place
            if out.exists() and '"pending"' in out.read_text():
                break
            await asyncio.sleep(0.05)
        ack = (await http.post(DELIVER, json=sent)).json()
        assert ack["msgId"] == sent["msgId"]
        for _ in range(200):
            if out.exists() and sent["msgId"] in out.read_text():
                break
            await asyncio.sleep(0.05)
        assert sent["msgId"] in out.read_text()
        assert "over DTLS ✓" in out.read_text()
    finally:
        if observer.returncode is None:
            observer.terminate()
        observed, _ = await observer.communicate()
    assert "DTLS" in observed.decode(errors="replace")  # libcoap logged the secure session

    uplink = {
        "msgType": "MSG",
        "oriAddr": {"addrType": "UE", "addr": "ue-1"},
        "destAddr": {"addrType": "AS", "addr": "as-1"},
        "msgId": "dtls-up-1",
        "payload": "reading=7",
    }
    trace = await coap(
        COAPS_CLIENT,
        *psk("dev-1"),
        "-m",
        "post",
        "-t",
        "50",
        "-e",
        json.dumps(uplink),
        coaps_uri(server, "messages"),
    )
    assert answer_code(trace) == "2.04"
    (got,) = await asyncio.to_thread(app.wait_for, 1)
    assert got["body"] == {k: v for k, v in uplink.items() if k != "msgType"}
    assert "k3y-of-dev-1" not in server.log()


async def test_dtls_wrong_key_gets_no_session_and_registers_nothing(server: DtlsServer) -> None:
    trace = await coap(
        COAPS_CLIENT,
        *psk("dev-1", "not-the-key"),
        *body(msgType="REG", ueSvcId="ue-1"),
        coaps_uri(server, "registrations"),
    )
    assert "2.01" not in trace
    assert re.search(r"alert|error", trace, re.IGNORECASE), trace
    unknown = await coap(
        COAPS_CLIENT,
        *psk("dev-9", "whatever"),
        *body(msgType="REG", ueSvcId="ue-1"),
        coaps_uri(server, "registrations"),
    )
    assert "2.01" not in unknown
    # Nothing was registered: the owner itself finds no registration to observe.
    inbox = await coap(COAPS_CLIENT, *psk("dev-1"), coaps_uri(server, "ues/ue-1/inbox"))
    assert answer_code(inbox) == "4.04"
    log = server.log()
    assert "failed (identity 'dev-1')" in log  # the server saw the handshake fail
    assert "Unknown identity" in log
    assert "not-the-key" not in log
    assert "k3y-of-dev-1" not in log


async def test_plain_coap_cannot_act_as_a_provisioned_ue(server: DtlsServer) -> None:
    regid = await register_over_dtls(server, "dev-1", "ue-1")
    trace = await coap(
        PLAIN_CLIENT, *body(msgType="REG", ueSvcId="ue-1"), coap_uri(server, "registrations")
    )
    assert answer_code(trace) == "4.01"
    assert "UNAUTHENTICATED" in trace
    observe = await coap(PLAIN_CLIENT, "-s", "1", coap_uri(server, "ues/ue-1/inbox"))
    assert answer_code(observe) == "4.01"
    dereg = await coap(PLAIN_CLIENT, "-m", "delete", coap_uri(server, f"registrations/{regid}"))
    assert answer_code(dereg) == "4.01"
    uplink: dict[str, Any] = {
        "msgType": "MSG",
        "oriAddr": {"addrType": "UE", "addr": "ue-1"},
        "destAddr": {"addrType": "AS", "addr": "as-1"},
        "msgId": "spoofed-1",
    }
    sent = await coap(
        PLAIN_CLIENT,
        *body(**uplink),
        coap_uri(server, "messages"),
    )
    assert answer_code(sent) == "4.01"
    # A UE that is not provisioned keeps working over plain CoAP (ue.require_dtls = false).
    other = await coap(
        PLAIN_CLIENT, *body(msgType="REG", ueSvcId="ue-9"), coap_uri(server, "registrations")
    )
    assert answer_code(other) == "2.01"
    # The provisioned UE's registration survived all of it.
    inbox = await coap(COAPS_CLIENT, *psk("dev-1"), coaps_uri(server, "ues/ue-1/inbox"))
    assert answer_code(inbox) == "2.05"


async def test_dtls_identity_cannot_act_as_another_ue(server: DtlsServer) -> None:
    regid = await register_over_dtls(server, "dev-1", "ue-1")
    claims = [
        (*body(msgType="REG", ueSvcId="ue-1"), coaps_uri(server, "registrations")),
        ("-m", "get", coaps_uri(server, "ues/ue-1/inbox")),
        ("-m", "delete", coaps_uri(server, f"registrations/{regid}")),
        (
            *body(
                msgType="IMDN",
                oriAddr={"addrType": "UE", "addr": "ue-1"},
                destAddr={"addrType": "AS", "addr": "as-1"},
                msgId="m-1",
                delivSt="REPT_DELY_SUCCESS",
            ),
            coaps_uri(server, "reports"),
        ),
    ]
    for claim in claims:
        trace = await coap(COAPS_CLIENT, *psk("dev-2"), *claim)
        assert answer_code(trace) == "4.03", trace
        assert "NOT_OWNER" in trace
    # dev-2 may act as its own UE; dev-1 still owns ue-1.
    await register_over_dtls(server, "dev-2", "ue-2")
    inbox = await coap(COAPS_CLIENT, *psk("dev-1"), coaps_uri(server, "ues/ue-1/inbox"))
    assert answer_code(inbox) == "2.05"


async def test_require_dtls_plain_port_refuses_everything(tmp_path: Path) -> None:
    server = start_server(tmp_path, MSGIN5G_UE_REQUIRE_DTLS="true")
    try:
        trace = await coap(
            PLAIN_CLIENT, *body(msgType="REG", ueSvcId="ue-9"), coap_uri(server, "registrations")
        )
        assert answer_code(trace) == "4.01"
        assert "UNAUTHENTICATED" in trace
        await register_over_dtls(server, "dev-1", "ue-1")
        inbox = await coap(PLAIN_CLIENT, coap_uri(server, "ues/ue-1/inbox"))
        assert answer_code(inbox) == "4.01"
    finally:
        server.stop()
