# SPDX-License-Identifier: Apache-2.0
"""`AsClient`: an Application Server's client of the server (MSGin5G-3, TS 29.538 8.1/8.2).

    async with AsClient("http://127.0.0.1:8080", "meter-app") as app:
        await app.register(target_uri="http://127.0.0.1:9000/cb")
        ack = await app.send("UE:ue-1", "hello", report=True, store=True)
        await app.report("UE:ue-1", msg_id, "REPT_DELY_SUCCESS")

Plain `http://` servers are spoken to in HTTP/2 with prior knowledge (h2c), `https://` with ALPN.
"""

from __future__ import annotations

from typing import Any

import httpx

from msgin5g.core.ids import new_message_id
from msgin5g.sdk.ue import Json, SdkError, parse_address

REGISTRATIONS = "/msgs-asregistration/v1/registrations"
DELIVERY = "/msgs-msgdelivery/v1"


class AsClient:
    """One Application Server (AS Service ID `as_service_id`) talking to one server."""

    def __init__(
        self,
        api_root: str,
        as_service_id: str,
        *,
        timeout: float = 30.0,
        auth: httpx.Auth | None = None,
    ) -> None:
        """`auth`: e.g. security.client.BearerAuth for a server with authentication on."""
        self.api_root = api_root.rstrip("/")
        self.as_service_id = as_service_id
        self.registration_url: str | None = None
        h2c = self.api_root.startswith("http://")
        self._http = httpx.AsyncClient(
            base_url=self.api_root,
            http1=not h2c,
            http2=True,
            timeout=timeout,
            auth=auth,
        )

    async def __aenter__(self) -> AsClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.aclose()

    @property
    def address(self) -> Json:
        return {"addrType": "AS", "addr": self.as_service_id}

    async def _post(self, path: str, body: Json, ok: int = 200) -> httpx.Response:
        response = await self._http.post(path, json=body)
        if response.status_code != ok:
            raise SdkError(str(response.status_code), _body(response))
        return response

    async def register(self, target_uri: str | None = None, app_id: str | None = None) -> str:
        """MSGS_ASRegistration; returns the registration resource URL."""
        body: Json = {"asSvcId": self.as_service_id}
        if target_uri is not None:
            body["targetUri"] = target_uri
        if app_id is not None:
            body["appId"] = app_id
        response = await self._post(REGISTRATIONS, body, ok=201)
        self.registration_url = response.headers["location"]
        return self.registration_url

    async def deregister(self) -> None:
        if self.registration_url is None:
            return
        response = await self._http.delete(self.registration_url)
        if response.status_code != 204:
            raise SdkError(str(response.status_code), _body(response))
        self.registration_url = None

    async def send(
        self,
        destination: str | Json,
        payload: str,
        *,
        msg_id: str | None = None,
        app_id: str | None = None,
        report: bool = False,
        store: bool = False,
        priority: str | None = None,
    ) -> Json:
        """deliver-as-message; returns the MessageDeliveryAck. Without `msg_id`, a new
        time-ordered UUIDv7 (ADR 0024)."""
        body: Json = {
            "oriAddr": self.address,
            "destAddr": parse_address(destination),
            "msgId": msg_id or new_message_id(),
            "payload": payload,
            "stoAndFwInd": store,
            "delivStReqInd": report,
        }
        if app_id is not None:
            body["appId"] = app_id
        if priority is not None:
            body["priority"] = priority
        ack: Json = (await self._post(f"{DELIVERY}/deliver-as-message", body)).json()
        return ack

    async def report(
        self,
        destination: str | Json,
        msg_id: str,
        status: str = "REPT_DELY_SUCCESS",
        failure_cause: str | None = None,
    ) -> Json:
        """deliver-report on message `msg_id` that `destination` sent to this AS."""
        body: Json = {
            "oriAddr": self.address,
            "destAddr": parse_address(destination),
            "msgId": msg_id,
            "delivSt": status,
        }
        if failure_cause is not None:
            body["failureCause"] = failure_cause
        ack: Json = (await self._post(f"{DELIVERY}/deliver-report", body)).json()
        return ack


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
