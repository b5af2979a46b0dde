# SPDX-License-Identifier: Apache-2.0
"""`UeClient`: an MSGin5G Client for UE applications, over MSGin5G-1 CoAP (DESIGN 2.3/2.4).

    async with UeClient("coap://127.0.0.1:5683", "ue-1") as ue:
        await ue.register()
        await ue.send("AS:meter-app", "reading=42", report=True)
        async for item in ue.inbox():          # MSG (reassembled) and IMDN dicts
            if item["msgType"] == "MSG" and item.get("delivStReqInd"):
                await ue.report(item["oriAddr"], item["msgId"])

Messages longer than the segment size (`max_segment_size`, default 2048 octets) are sent as
segments; segments received are reassembled before `inbox()` yields the message, confirmed
with SEGCONFIR, and missing ones asked for again with SEGREC. Notifications are acknowledged
when `inbox()` takes them, so the server counts an item as handed over only then; delivery is
at least once and the client drops repeats it has seen recently (by originator, msgId, segment).

With a `coaps://` server and `psk=(identity, key)` the client speaks CoAP over DTLS 1.2 with a
pre-shared key (RFC 7252 §9.1.3.1; needs the `dtls` extra, python-mbedtls; ADR 0016).
"""

from __future__ import annotations

import json
import logging
import socket
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import urlsplit

from msgin5g.coap import CoapClient, CoapError, Code, ContentFormat, TransmissionParameters
from msgin5g.coap.message import format_code
from msgin5g.core.ids import new_message_id
from msgin5g.core.segmentation import DEFAULT_MAX_SEGMENT_SIZE, Part, Reassembly, split_payload

BASE = ("msgin5g", "v1")
Json = dict[str, Any]


class SdkError(Exception):
    """The server answered with an error: `code` is the CoAP code ("4.04") or HTTP status."""

    def __init__(self, code: str, body: Any) -> None:
        super().__init__(f"{code} {body}")
        self.code = code
        self.body = body


def parse_coap_uri(uri: str, default_port: int | None = None) -> tuple[str, int]:
    """`coap://HOST[:PORT]`, `coaps://HOST[:PORT]` (or `HOST:PORT`) to a numeric (address,
    port) pair; the default port is 5683, 5684 for coaps."""
    parts = urlsplit(uri if "://" in uri else f"coap://{uri}")
    if parts.scheme not in ("coap", "coaps") or not parts.hostname:
        raise ValueError(f"expected coap://HOST:PORT or coaps://HOST:PORT, got {uri!r}")
    port = parts.port or default_port or (5684 if parts.scheme == "coaps" else 5683)
    info = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_DGRAM)
    return str(info[0][4][0]), port


def parse_address(text: str | Json) -> Json:
    """`TYPE:ADDR` (e.g. `AS:meter`, `UE:ue-2`) or an Address object to an Address object."""
    if isinstance(text, dict):
        return text
    kind, sep, addr = text.partition(":")
    if not sep or not addr:
        raise ValueError(f"expected TYPE:ADDR (e.g. AS:app-1), got {text!r}")
    return {"addrType": kind.upper(), "addr": addr}


class _Segments:
    """Client-side reassembly of segmented notifications, keyed by segId."""

    def __init__(self) -> None:
        self._sets: dict[str, dict[int, Json]] = {}

    def add(self, item: Json) -> tuple[Json | None, list[int]]:
        """Returns (the whole message, []) when complete, else (None, missing numbers)."""
        params = item.get("segParams") or {}
        seg_id = str(params.get("segId"))
        parts = self._sets.setdefault(seg_id, {})
        parts.setdefault(int(params.get("segNumb") or 0), item)
        reassembly = Reassembly(
            Part(
                n,
                (p.get("segParams") or {}).get("totalSegCount"),
                bool((p.get("segParams") or {}).get("lastSegFlag")),
                p.get("payload") or "",
            )
            for n, p in parts.items()
        )
        if not reassembly.complete:
            return None, reassembly.missing() if reassembly.total else []
        del self._sets[seg_id]
        whole = dict(parts[min(parts)])
        whole["payload"] = reassembly.payload()
        whole.pop("segParams", None)
        whole.pop("segInd", None)
        whole["segId"] = seg_id
        return whole, []


class UeClient:
    """One MSGin5G UE (UE Service ID `ue_service_id`) talking to one server."""

    def __init__(
        self,
        server: str | tuple[str, int],
        ue_service_id: str,
        *,
        max_segment_size: int = DEFAULT_MAX_SEGMENT_SIZE,
        params: TransmissionParameters | None = None,
        logger: logging.Logger | None = None,
        psk: tuple[str, bytes] | None = None,
    ) -> None:
        secure = isinstance(server, str) and server.startswith("coaps://")
        if secure and psk is None:
            raise ValueError("a coaps:// server needs psk=(identity, key)")
        if psk is not None and not secure:
            raise ValueError("psk=(identity, key) needs a coaps:// server")
        self._psk = psk
        self.remote = parse_coap_uri(server) if isinstance(server, str) else server
        self.ue_service_id = ue_service_id
        self.max_segment_size = max_segment_size
        self.registration_id: str | None = None
        self._client = CoapClient(params=params)
        self._log = logger or logging.getLogger(__name__)
        self._segments = _Segments()
        self._seen: OrderedDict[tuple[str, str, int], None] = OrderedDict()

    async def __aenter__(self) -> UeClient:
        if self._psk is None:
            await self._client.start()
            return self
        from msgin5g.coap.dtls_client import connect_coaps

        identity, key = self._psk
        await connect_coaps(self._client, self.remote[0], self.remote[1], identity, key)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._client.stop()

    @property
    def address(self) -> Json:
        return {"addrType": "UE", "addr": self.ue_service_id}

    async def _post(self, resource: str, body: Json) -> tuple[int, Json]:
        response = await self._client.request(
            self.remote,
            Code.POST,
            (*BASE, resource),
            payload=json.dumps(body, ensure_ascii=False).encode(),
            content_format=ContentFormat.JSON,
        )
        answer = json.loads(response.payload) if response.payload else {}
        if not 64 <= response.code < 96:
            raise SdkError(format_code(response.code), answer)
        return response.code, answer

    # registration --------------------------------------------------------------------------

    async def register(
        self,
        *,
        max_segment_size: int | None = None,
        comm_avail: Json | None = None,
        trig_info: Json | None = None,
    ) -> str:
        """REG; returns the registration id. Raises SdkError on an error answer."""
        body: Json = {"msgType": "REG", "ueSvcId": self.ue_service_id}
        if max_segment_size is not None:
            body["maxSegSize"] = max_segment_size
        if comm_avail is not None:
            body["commAvail"] = comm_avail
        if trig_info is not None:
            body["trigInfo"] = trig_info
        _, answer = await self._post("registrations", body)
        self.registration_id = str(answer["regId"])
        return self.registration_id

    async def deregister(self) -> None:
        """DEREG (DELETE of the registration). Raises SdkError on an error answer."""
        if self.registration_id is None:
            return
        response = await self._client.request(
            self.remote, Code.DELETE, (*BASE, "registrations", self.registration_id)
        )
        if response.code != Code.DELETED:
            raise SdkError(format_code(response.code), response.payload.decode(errors="replace"))
        self.registration_id = None

    # sending -------------------------------------------------------------------------------

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
        """Send one message (as segments when longer than `max_segment_size` octets).

        Returns the MSGRESP of the message (of its last segment when segmented). Without
        `msg_id`, a new time-ordered UUIDv7 (ADR 0024).
        """
        body: Json = {
            "msgType": "MSG",
            "oriAddr": self.address,
            "destAddr": parse_address(destination),
            "msgId": msg_id or new_message_id(),
            "stoAndFwInd": store,
        }
        if app_id is not None:
            body["appId"] = app_id
        if report:
            body["delivStReqInd"] = True
        if priority is not None:
            body["priority"] = priority
        if len(payload.encode()) <= self.max_segment_size:
            _, answer = await self._post("messages", {**body, "payload": payload})
            return answer
        parts = split_payload(payload, self.max_segment_size)
        seg_id = uuid.uuid4().hex
        answer = {}
        for number, part in enumerate(parts, start=1):
            params: Json = {"segId": seg_id, "segNumb": number, "totalSegCount": len(parts)}
            if number == len(parts):
                params["lastSegFlag"] = True
            _, answer = await self._post(
                "messages", {**body, "payload": part, "segInd": True, "segParams": params}
            )
        return answer

    async def report(
        self,
        destination: str | Json,
        msg_id: str,
        status: str = "REPT_DELY_SUCCESS",
        failure_cause: str | None = None,
    ) -> Json:
        """IMDN: report on message `msg_id` that `destination` sent; returns the MSGRESP."""
        body: Json = {
            "msgType": "IMDN",
            "oriAddr": self.address,
            "destAddr": parse_address(destination),
            "msgId": msg_id,
            "delivSt": status,
        }
        if failure_cause is not None:
            body["failureCause"] = failure_cause
        _, answer = await self._post("reports", body)
        return answer

    async def recover(self, segment_id: str, missing: list[int]) -> Json:
        """SEGREC: ask the server to send segments `missing` of `segment_id` again."""
        _, answer = await self._post(
            "segments", {"msgType": "SEGREC", "segId": segment_id, "missing": missing}
        )
        return answer

    async def confirm(self, segment_id: str) -> None:
        """SEGCONFIR: every segment of `segment_id` arrived."""
        await self._post("segments", {"msgType": "SEGCONFIR", "segId": segment_id})

    # topics (TS 23.554 8.8.1 / 8.8.2) -------------------------------------------------------

    async def subscribe_topics(self, topics: list[str], expires: str | None = None) -> Json:
        """TOPICSUB: receive every message sent to these topics until `expires` (RFC 3339;
        the server's default when None); returns the answer with the granted `exprTime`."""
        body: Json = {"msgType": "TOPICSUB", "oriAddr": self.address, "msgTopics": topics}
        if expires is not None:
            body["exprTime"] = expires
        _, answer = await self._post("topics", body)
        return answer

    async def unsubscribe_topics(self, topics: list[str]) -> None:
        """TOPICUNSUB: stop receiving messages sent to these topics."""
        await self._post(
            "topics", {"msgType": "TOPICUNSUB", "oriAddr": self.address, "msgTopics": topics}
        )

    # receiving -----------------------------------------------------------------------------

    async def inbox(self) -> AsyncGenerator[Json, None]:
        """Observe the inbox; yields `{"pending": n}` first, then each MSG (reassembled) and
        IMDN. Ends when the server ends the observation; leaving the loop deregisters it."""
        observation = await self._client.observe(
            self.remote, (*BASE, "ues", self.ue_service_id, "inbox")
        )
        async with observation:
            async for note in observation:
                if not 64 <= note.code < 96:
                    raise SdkError(format_code(note.code), note.payload.decode(errors="replace"))
                item: Json = json.loads(note.payload)
                if self._repeat(item):
                    continue
                if item.get("msgType") == "MSG" and item.get("segInd"):
                    whole, missing = self._segments.add(item)
                    if whole is None:
                        if missing and (item.get("segParams") or {}).get("lastSegFlag"):
                            await self._recover_quietly(item, missing)
                        continue
                    await self._confirm_quietly(str(whole["segId"]))
                    item = whole
                yield item

    def _repeat(self, item: Json) -> bool:
        if "msgId" not in item:
            return False
        origin = item.get("oriAddr") or {}
        number = int((item.get("segParams") or {}).get("segNumb") or 0)
        key = (
            f"{item.get('msgType')}|{origin.get('addrType')}:{origin.get('addr')}",
            str(item["msgId"]),
            number,
        )
        if key in self._seen:
            return True
        self._seen[key] = None
        if len(self._seen) > 4096:
            self._seen.popitem(last=False)
        return False

    async def _recover_quietly(self, item: Json, missing: list[int]) -> None:
        seg_id = str((item.get("segParams") or {}).get("segId"))
        try:
            await self.recover(seg_id, missing)
        except (SdkError, CoapError, OSError) as exc:
            self._log.warning("SEGREC for %s failed: %s", seg_id, exc)

    async def _confirm_quietly(self, segment_id: str) -> None:
        try:
            await self.confirm(segment_id)
        except (SdkError, CoapError, OSError) as exc:
            self._log.warning("SEGCONFIR for %s failed: %s", segment_id, exc)
