# SPDX-License-Identifier: Apache-2.0
"""One port, two protocols (DESIGN 2.1): h2c with prior knowledge and HTTP/1.1, against the
real `msgin5g server` process, with every response validated against the official files."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from typing import Any

import httpx
import pytest
from tests.support import oas
from tests.support.procs import ServerProcess

REGISTRATIONS = "/msgs-asregistration/v1/registrations"
DELIVER_AS = "/msgs-msgdelivery/v1/deliver-as-message"
UNREACHABLE = "http://127.0.0.1:9/cb"


def _client(server: ServerProcess, http2: bool) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url,
        http1=not http2,
        http2=http2,
        timeout=10.0,
        event_hooks=oas.EVENT_HOOKS,
    )


@pytest.mark.parametrize(("http2", "version"), [(True, "HTTP/2"), (False, "HTTP/1.1")])
async def test_the_api_over_h2c_and_http11(
    server: ServerProcess, http2: bool, version: str
) -> None:
    async with _client(server, http2) as client:
        registered = await client.post(
            REGISTRATIONS, json={"asSvcId": "as-dest", "targetUri": UNREACHABLE}
        )
        assert registered.http_version == version
        assert registered.status_code == 201
        # With no api_root configured, Location is built from the Host / :authority.
        assert registered.headers["location"].startswith(f"{server.url}{REGISTRATIONS}/")

        body = {
            "oriAddr": {"addrType": "AS", "addr": "as-src"},
            "destAddr": {"addrType": "AS", "addr": "as-dest"},
            "msgId": f"m-{version}",
            "payload": "hello",
            "stoAndFwInd": False,
        }
        delivered = await client.post(DELIVER_AS, json=body)
        assert delivered.http_version == version
        assert delivered.status_code == 200
        assert delivered.json() == {"oriAddr": body["oriAddr"], "msgId": body["msgId"]}

        invalid = await client.post(DELIVER_AS, json={"msgId": "m"})
        assert invalid.http_version == version
        assert invalid.status_code == 400
        assert invalid.headers["content-type"] == "application/problem+json"

        wrong_type = await client.post(
            DELIVER_AS, content=json.dumps(body), headers={"content-type": "text/plain"}
        )
        assert wrong_type.status_code == 415

        gone = await client.delete(registered.headers["location"])
        assert gone.http_version == version
        assert gone.status_code == 204


async def test_many_concurrent_streams_on_one_h2c_connection(server: ServerProcess) -> None:
    """HTTP/2 multiplexing: 50 concurrent streams, each answered with its own ack."""
    async with _client(server, http2=True) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    DELIVER_AS,
                    json={
                        "oriAddr": {"addrType": "AS", "addr": "as-src"},
                        "destAddr": {"addrType": "UE", "addr": f"ue-{i}"},
                        "msgId": f"m-{i}",
                        "stoAndFwInd": True,
                    },
                )
                for i in range(50)
            )
        )
    assert {r.http_version for r in responses} == {"HTTP/2"}
    assert [r.json()["msgId"] for r in responses] == [f"m-{i}" for i in range(50)]
    assert {r.json()["status"] for r in responses} == {"DELY_FAILED"}


def _curl(*args: str) -> tuple[str, int, dict[str, str], bytes]:
    """Run curl -i and split its output into (HTTP version, status, headers, body)."""
    curl = shutil.which("curl")
    assert curl, "curl is not installed"
    done = subprocess.run(
        [curl, "-sS", "-i", "--max-time", "10", *args], capture_output=True, check=True
    )
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, status, *_ = status_line.split(" ")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return version, int(status), headers, body


def _as_httpx(
    method: str, url: str, body: str, status: int, headers: dict[str, str], content: bytes
) -> httpx.Response:
    request = httpx.Request(
        method, url, content=body.encode(), headers={"content-type": "application/json"}
    )
    return httpx.Response(status, headers=headers, content=content, request=request)


def test_curl_http2_prior_knowledge_readme_example(server: ServerProcess) -> None:
    """The README's curl lines work as shown: register an AS, then send it a message."""
    registration = '{"asSvcId": "as-dest", "targetUri": "http://127.0.0.1:9/cb"}'
    version, status, headers, content = _curl(
        "--http2-prior-knowledge",
        "-H",
        "content-type: application/json",
        "-d",
        registration,
        f"{server.url}{REGISTRATIONS}",
    )
    assert (version, status) == ("HTTP/2", 201)
    assert headers["location"].startswith(f"{server.url}{REGISTRATIONS}/")
    assert json.loads(content)["asSvcId"] == "as-dest"
    oas.validate(
        _as_httpx("POST", f"{server.url}{REGISTRATIONS}", registration, status, headers, content),
        check_request=True,
    )

    message = (
        '{"oriAddr": {"addrType": "AS", "addr": "as-src"},'
        ' "destAddr": {"addrType": "AS", "addr": "as-dest"},'
        ' "msgId": "m-1", "payload": "hello", "stoAndFwInd": false}'
    )
    version, status, headers, content = _curl(
        "--http2-prior-knowledge",
        "-H",
        "content-type: application/json",
        "-d",
        message,
        f"{server.url}{DELIVER_AS}",
    )
    assert (version, status) == ("HTTP/2", 200)
    assert headers["content-type"] == "application/json"
    ack: dict[str, Any] = json.loads(content)
    assert ack == {"oriAddr": {"addrType": "AS", "addr": "as-src"}, "msgId": "m-1"}
    oas.validate(
        _as_httpx("POST", f"{server.url}{DELIVER_AS}", message, status, headers, content),
        check_request=True,
    )

    # The same over plain HTTP/1.1 (curl's default for http://) repeats the (oriAddr, msgId):
    # acknowledged again, identically.
    version, status, _, again = _curl(
        "-H", "content-type: application/json", "-d", message, f"{server.url}{DELIVER_AS}"
    )
    assert (version, status) == ("HTTP/1.1", 200)
    assert json.loads(again) == ack
