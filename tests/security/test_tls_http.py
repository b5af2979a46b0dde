# SPDX-License-Identifier: Apache-2.0
"""HTTPS with client certificates (ADR 0016, docs/security.md) against real server processes:
curl speaks h2 by ALPN presenting a certificate of the configured CA and is served; without a
certificate, or with one of another CA, the handshake is refused. Outbound, the server
delivers to an https:// AS callback that requires a client certificate, verifying the
callback against [outbound] ca_file and presenting [outbound] client_cert."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest

from tests.security.certs import Pki, make_pki
from tests.security.test_dtls_ue import PLAIN_CLIENT, answer_code, body, coap, coap_uri
from tests.support import procs
from tests.support.procs import ServerProcess

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl missing"),
]

REGISTER = "/msgs-asregistration/v1/registrations"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def client_context(pki: Pki, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def start_tls_server(tmp_path: Path, pki: Pki, **env: str) -> ServerProcess:
    """A server process with TLS and required client certificates; readiness is probed with
    the CA's client certificate (the stock probe has none)."""
    probe = client_context(pki, pki.client_cert, pki.client_key)

    def wait_with_certificate(url: str, timeout: float = 15.0, proc: Any = None) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            try:
                if httpx.get(url, verify=probe, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{url} did not answer")

    server = ServerProcess(
        tmp_path / "data",
        env={
            "MSGIN5G_TLS_CERT": str(pki.server_cert),
            "MSGIN5G_TLS_KEY": str(pki.server_key),
            "MSGIN5G_TLS_CLIENT_CA": str(pki.ca),
            **env,
        },
    )
    with mock.patch.object(procs, "wait_http", wait_with_certificate):
        return server.start()


@pytest.fixture
def server(tmp_path: Path, pki: Pki) -> Iterator[ServerProcess]:
    proc = start_tls_server(tmp_path, pki)
    try:
        yield proc
    finally:
        proc.stop()


async def curl(*args: str | Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        "-o",
        "-",
        "-w",
        "\n%{http_code} %{http_version}",
        *map(str, args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(15):
        out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


async def test_h2_by_alpn_with_a_client_certificate(server: ServerProcess, pki: Pki) -> None:
    registration = json.dumps({"asSvcId": "as-tls", "targetUri": "https://127.0.0.1:9/cb"})
    code, out = await curl(
        "--http2",
        "--cacert",
        pki.ca,
        "--cert",
        pki.client_cert,
        "--key",
        pki.client_key,
        "-H",
        "content-type: application/json",
        "-d",
        registration,
        f"{server.url}{REGISTER}",
    )
    assert code == 0, out
    assert out.endswith("201 2"), out  # created, over HTTP/2
    code, out = await curl(
        "--http1.1",
        "--cacert",
        pki.ca,
        "--cert",
        pki.client_cert,
        "--key",
        pki.client_key,
        f"{server.url}/readyz",
    )
    assert code == 0, out
    assert out.endswith("200 1.1"), out


async def test_clients_without_a_certificate_of_the_ca_are_refused(
    server: ServerProcess, pki: Pki
) -> None:
    registration = json.dumps({"asSvcId": "as-x", "targetUri": "https://127.0.0.1:9/cb"})
    for credentials in ((), ("--cert", pki.stranger_cert, "--key", pki.stranger_key)):
        code, out = await curl(
            "--http2",
            "--cacert",
            pki.ca,
            *credentials,
            "-H",
            "content-type: application/json",
            "-d",
            registration,
            f"{server.url}{REGISTER}",
        )
        assert code != 0, out  # the TLS handshake failed: no HTTP answer at all
        assert not out.rstrip().endswith(("201 2", "200 2")), out
    # Nothing of it was registered: the same AS id is free for a client with a certificate.
    async with httpx.AsyncClient(
        verify=client_context(pki, pki.client_cert, pki.client_key), http2=True
    ) as client:
        answer = await client.post(
            f"{server.url}{REGISTER}",
            json={"asSvcId": "as-x", "targetUri": "https://127.0.0.1:9/cb"},
        )
    assert answer.status_code == 201, answer.text
    assert answer.http_version == "HTTP/2"


class TlsCallbackReceiver:
    """An AS callback receiver over HTTPS (HTTP/1.1) that requires a client certificate of the
    test CA; records each request with the subject CN of the client certificate."""

    def __init__(self, pki: Pki) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
        context.load_verify_locations(str(pki.ca))
        context.verify_mode = ssl.CERT_REQUIRED
        context.set_alpn_protocols(["http/1.1"])
        self._context = context
        self.received: list[dict[str, Any]] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> TlsCallbackReceiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert") or {}
        subject = dict(pair[0] for pair in peer.get("subject", ()))
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode().split("\r\n")
                headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
                payload = await reader.readexactly(int(headers.get("content-length", "0")))
                self.received.append(
                    {
                        "path": lines[0].split(" ")[1],
                        "body": json.loads(payload),
                        "client": subject.get("commonName"),
                    }
                )
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def wait_for(self, count: int, within: float = 10.0) -> list[dict[str, Any]]:
        for _ in range(int(within / 0.05)):
            if len(self.received) >= count:
                return self.received
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{count} callbacks expected, got {self.received}")


@pytest.fixture
async def receiver(pki: Pki) -> AsyncIterator[TlsCallbackReceiver]:
    async with TlsCallbackReceiver(pki) as running:
        yield running


async def send_uplink(server: ServerProcess, receiver: TlsCallbackReceiver, pki: Pki) -> str:
    """Register the AS with its https callback, register a plain CoAP UE and let it send a
    message to the AS; returns the msgId."""
    async with httpx.AsyncClient(
        verify=client_context(pki, pki.client_cert, pki.client_key), http2=True
    ) as client:
        answer = await client.post(
            f"{server.url}{REGISTER}",
            json={"asSvcId": "as-1", "targetUri": f"https://127.0.0.1:{receiver.port}/cb"},
        )
    assert answer.status_code == 201, answer.text
    trace = await coap(
        PLAIN_CLIENT, *body(msgType="REG", ueSvcId="ue-7"), coap_uri(server, "registrations")
    )
    assert answer_code(trace) == "2.01"
    msg_id = str(uuid.uuid4())
    uplink = {
        "msgType": "MSG",
        "oriAddr": {"addrType": "UE", "addr": "ue-7"},
        "destAddr": {"addrType": "AS", "addr": "as-1"},
        "msgId": msg_id,
        "payload": "over mutual TLS",
        "stoAndFwInd": True,
    }
    trace = await coap(PLAIN_CLIENT, *body(**uplink), coap_uri(server, "messages"))
    assert answer_code(trace) == "2.04"
    return msg_id


async def test_outbound_delivery_presents_the_client_certificate(
    tmp_path: Path, pki: Pki, receiver: TlsCallbackReceiver
) -> None:
    server = start_tls_server(
        tmp_path,
        pki,
        MSGIN5G_OUTBOUND_CA_FILE=str(pki.ca),
        MSGIN5G_OUTBOUND_CLIENT_CERT=str(pki.client_cert),
        MSGIN5G_OUTBOUND_CLIENT_KEY=str(pki.client_key),
    )
    try:
        msg_id = await send_uplink(server, receiver, pki)
        (got,) = await receiver.wait_for(1)
    finally:
        server.stop()
    assert got["path"] == "/cb/deliver-message"
    assert got["body"]["msgId"] == msg_id
    assert got["body"]["payload"] == "over mutual TLS"
    assert got["client"] == "client"


async def test_outbound_delivery_without_a_client_certificate_is_refused_by_the_peer(
    tmp_path: Path, pki: Pki, receiver: TlsCallbackReceiver
) -> None:
    server = start_tls_server(tmp_path, pki, MSGIN5G_OUTBOUND_CA_FILE=str(pki.ca))
    try:
        msg_id = await send_uplink(server, receiver, pki)
        await asyncio.sleep(2)
        assert receiver.received == []  # the callback's TLS handshake refused every attempt
    finally:
        server.stop()
    attempts = [
        line for line in server.log().splitlines() if "delivery deferred" in line and msg_id in line
    ]
    assert len(attempts) >= 2  # tried, refused by the peer, retried
