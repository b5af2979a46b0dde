# SPDX-License-Identifier: Apache-2.0
"""A Cell Broadcast Centre simulator with the osmo-cbc ECBE REST shape, for tests and labs.

    python -m msgin5g.gateways.cbs.cbc_sim --port P [--host 127.0.0.1]

* ``POST /api/ecbe/v1/message`` with the JSON body below: 201 (empty body) when accepted;
  400 ``{"error": "..."}`` for anything off-shape; 409 when ``message_id`` is already active.
* ``DELETE /api/ecbe/v1/message/{message_id}``: 200 when it was active, 404 otherwise.

The body is validated strictly (unknown members, wrong types, booleans for integers, enums,
ranges, page count 1-15 and page size 1-82 octets are all 400)::

    {"cbe_name": str, "category": "normal" | "high_priority" | "background",
     "repetition_period": 1..4095 (units of 1.883 s, as osmo-cbc),
     "num_of_bcast": 0..65535 (0 = until deleted),
     "scope": {"scope_plmn": {}} | {"scope_cell_list": {"cgi": [{"mcc", "mnc", "lac", "ci"}]}},
     "smscb_message": {
        "message_id": 0..65535,
        "serial_nr": {"serial_nr_encoded": 0..65535}
                   | {"serial_nr_decoded": {"geo_scope": ..., "msg_code": 0..1023,
                                            "update_nr": 0..15}},
        "payload": {"payload_encoded": {"dcs": 0..255, "pages": [{"data": hex}]}}
                 | {"payload_decoded": {"character_set": "gsm" | "8bit" | "ucs2",
                                        "language"?: str, "data_utf8": str}}}}

It is plain HTTP/1.1 on asyncio (keep-alive, Content-Length bodies). :class:`CbcSimulator`
keeps the accepted messages (``messages`` by message_id, ``accepted`` in order, ``deleted``)
so tests can check what arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import signal
import sys
from collections.abc import Sequence
from typing import Any, Final

__all__ = ["ECBE_MESSAGE", "CbcSimulator", "EcbeError", "main", "validate_message"]

log = logging.getLogger(__name__)

ECBE_MESSAGE: Final = "/api/ecbe/v1/message"
CATEGORIES: Final = frozenset({"normal", "high_priority", "background"})
GEO_SCOPES: Final = frozenset({"cell_wide_immediate", "plmn_wide", "lac_sac_tac_wide", "cell_wide"})
CHARACTER_SETS: Final = frozenset({"gsm", "8bit", "ucs2"})
_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")


class EcbeError(ValueError):
    """The request does not have the ECBE shape (answered 400)."""


def _obj(
    value: Any, where: str, required: set[str], optional: frozenset[str] | set[str] = frozenset()
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EcbeError(f"{where} must be an object")
    missing = required - value.keys()
    if missing:
        raise EcbeError(f"{where} lacks {', '.join(sorted(missing))}")
    unknown = value.keys() - required - optional
    if unknown:
        raise EcbeError(f"{where} has unknown members {', '.join(sorted(unknown))}")
    return value


def _int(value: Any, where: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise EcbeError(f"{where} must be an integer in {low}..{high}")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise EcbeError(f"{where} must be a string")
    return value


def _one_of(value: Any, where: str, names: tuple[str, str]) -> tuple[str, Any]:
    body = _obj(value, where, set(), set(names))
    if len(body) != 1:
        raise EcbeError(f"{where} must have exactly one of {' or '.join(names)}")
    ((name, inner),) = body.items()
    return name, inner


def validate_message(body: Any) -> int:
    """Check one ECBE message; return its message_id.

    Raises:
        EcbeError: naming the first thing that is wrong.
    """
    top = _obj(
        body,
        "the body",
        {"cbe_name", "category", "repetition_period", "num_of_bcast", "scope", "smscb_message"},
    )
    _str(top["cbe_name"], "cbe_name")
    if top["category"] not in CATEGORIES:
        raise EcbeError(f"category must be one of {', '.join(sorted(CATEGORIES))}")
    _int(top["repetition_period"], "repetition_period", 1, 4095)
    _int(top["num_of_bcast"], "num_of_bcast", 0, 65535)
    kind, scope = _one_of(top["scope"], "scope", ("scope_plmn", "scope_cell_list"))
    if kind == "scope_plmn":
        _obj(scope, "scope_plmn", set())
    else:
        cgis = _obj(scope, "scope_cell_list", {"cgi"})["cgi"]
        if not isinstance(cgis, list) or not cgis:
            raise EcbeError("scope_cell_list.cgi must be a non-empty array")
        for i, cgi in enumerate(cgis):
            where = f"scope_cell_list.cgi[{i}]"
            cell = _obj(cgi, where, {"mcc", "mnc", "lac", "ci"})
            _int(cell["mcc"], f"{where}.mcc", 0, 999)
            _int(cell["mnc"], f"{where}.mnc", 0, 999)
            _int(cell["lac"], f"{where}.lac", 0, 65535)
            _int(cell["ci"], f"{where}.ci", 0, 65535)
    msg = _obj(top["smscb_message"], "smscb_message", {"message_id", "serial_nr", "payload"})
    message_id = _int(msg["message_id"], "smscb_message.message_id", 0, 65535)
    kind, serial = _one_of(
        msg["serial_nr"], "serial_nr", ("serial_nr_encoded", "serial_nr_decoded")
    )
    if kind == "serial_nr_encoded":
        _int(serial, "serial_nr_encoded", 0, 65535)
    else:
        decoded = _obj(serial, "serial_nr_decoded", {"geo_scope", "msg_code", "update_nr"})
        if decoded["geo_scope"] not in GEO_SCOPES:
            raise EcbeError(f"geo_scope must be one of {', '.join(sorted(GEO_SCOPES))}")
        _int(decoded["msg_code"], "serial_nr_decoded.msg_code", 0, 1023)
        _int(decoded["update_nr"], "serial_nr_decoded.update_nr", 0, 15)
    kind, payload = _one_of(msg["payload"], "payload", ("payload_encoded", "payload_decoded"))
    if kind == "payload_encoded":
        encoded = _obj(payload, "payload_encoded", {"dcs", "pages"})
        _int(encoded["dcs"], "payload_encoded.dcs", 0, 255)
        pages = encoded["pages"]
        if not isinstance(pages, list) or not 1 <= len(pages) <= 15:
            raise EcbeError("payload_encoded.pages must be an array of 1..15 pages")
        for i, page in enumerate(pages):
            data = _str(_obj(page, f"pages[{i}]", {"data"})["data"], f"pages[{i}].data")
            if not _HEX.match(data) or len(data) // 2 > 82:
                raise EcbeError(f"pages[{i}].data must be 1..82 octets in hex")
    else:
        decoded = _obj(payload, "payload_decoded", {"character_set", "data_utf8"}, {"language"})
        if decoded["character_set"] not in CHARACTER_SETS:
            raise EcbeError(f"character_set must be one of {', '.join(sorted(CHARACTER_SETS))}")
        _str(decoded["data_utf8"], "payload_decoded.data_utf8")
        if "language" in decoded:
            _str(decoded["language"], "payload_decoded.language")
    return message_id


_REASONS: Final = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
}


class CbcSimulator:
    """The simulator as an asyncio server; :meth:`start` binds 127.0.0.1:`port` (0 = any)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.messages: dict[int, dict[str, Any]] = {}
        """Active messages by message_id."""
        self.accepted: list[dict[str, Any]] = []
        """Every accepted POST body, in order."""
        self.deleted: list[int] = []
        self.rejected: list[tuple[int, str]] = []
        """(status, error) of every refused request."""
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> CbcSimulator:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()
        self._server = None

    def handle(self, method: str, path: str, raw: bytes) -> tuple[int, bytes]:
        """Answer one request: (status, JSON body or b"")."""
        if path == ECBE_MESSAGE:
            if method != "POST":
                return self._error(405, f"{method} is not allowed on {path}")
            try:
                body = json.loads(raw)
                message_id = validate_message(body)
            except (ValueError, RecursionError) as exc:
                return self._error(400, str(exc))
            if message_id in self.messages:
                return self._error(409, f"message_id {message_id} is already active")
            self.messages[message_id] = body
            self.accepted.append(body)
            log.info("CBS message accepted", extra={"message_id": message_id})
            return 201, b""
        if path.startswith(ECBE_MESSAGE + "/"):
            if method != "DELETE":
                return self._error(405, f"{method} is not allowed on {path}")
            tail = path.removeprefix(ECBE_MESSAGE + "/")
            if not tail.isdigit() or int(tail) not in self.messages:
                return self._error(404, f"no active message {tail}")
            del self.messages[int(tail)]
            self.deleted.append(int(tail))
            return 200, b""
        return self._error(404, f"no resource at {path}")

    def _error(self, status: int, error: str) -> tuple[int, bytes]:
        self.rejected.append((status, error))
        log.info("ECBE request refused", extra={"status": status, "error": error})
        return status, json.dumps({"error": error}).encode()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    raw = await reader.readline()
                    if raw in (b"\r\n", b"\n", b""):
                        break
                    key, _, value = raw.decode("latin-1").partition(":")
                    headers[key.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                if length > 1_048_576:
                    status, answer = self._error(413, "body too large")
                    close = True
                else:
                    body = await reader.readexactly(length)
                    status, answer = self.handle(method, path.split("?", 1)[0], body)
                    close = headers.get("connection", "").lower() == "close"
                head = f"HTTP/1.1 {status} {_REASONS.get(status, 'X')}\r\n"
                if answer:
                    head += "content-type: application/json\r\n"
                head += f"content-length: {len(answer)}\r\n\r\n"
                writer.write(head.encode() + answer)
                await writer.drain()
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()


async def _run(host: str, port: int) -> None:
    sim = await CbcSimulator(host, port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("CBC simulator listening", extra={"url": sim.url})
    await stop.wait()
    await sim.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m msgin5g.gateways.cbs.cbc_sim")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
