# SPDX-License-Identifier: Apache-2.0
"""Hypothesis strategies for untrusted input: CoAP datagrams and MSGin5G-1 JSON bodies."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from msgin5g.coap.message import BlockOption, Message, MessageType, OptionNumber, encode

MSG_TYPES = ("REG", "DEREG", "MSG", "MSGRESP", "IMDN", "SEGREC", "SEGCONFIR", "TOPICSUB", "x")
FIELDS = (
    "msgType",
    "ueSvcId",
    "maxSegSize",
    "oriAddr",
    "destAddr",
    "msgId",
    "appId",
    "payload",
    "delivStReqInd",
    "segInd",
    "segParams",
    "stoAndFwInd",
    "stoAndFwParams",
    "delivSt",
    "failureCause",
    "segId",
    "missing",
    "aggregated",
    "msgTopics",
    "exprTime",
    "priority",
    "commAvail",
)
RESOURCES = ("registrations", "messages", "reports", "segments", "topics", "ues", "nope")

# Any JSON value, small: the wrong types for every field.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

FUZZ_UE = "fuzz-ue"
"""A UE the fuzzed server knows, so that well-typed bodies get past the registration check."""

addresses = st.fixed_dictionaries(
    {},
    optional={
        "addrType": st.sampled_from(("UE", "AS", "GROUP", "TOPIC", "BC", "??")) | json_values,
        "addr": st.sampled_from((FUZZ_UE, "as-1", "")) | st.text(max_size=12) | json_values,
    },
)


@st.composite
def msgin5g1_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A JSON object with a MSGin5G-1 msgType and a random mix of right and wrong fields."""
    body: dict[str, Any] = {"msgType": draw(st.sampled_from(MSG_TYPES) | json_values)}
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=8, unique=True)):
        if name in ("oriAddr", "destAddr"):
            body[name] = draw(addresses | json_values)
        elif name == "segParams":
            body[name] = draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        k: json_values | st.integers(-3, 5)
                        for k in ("segId", "totalSegCount", "segNumb", "lastSegFlag")
                    },
                )
                | json_values
            )
        elif name == "aggregated":
            body[name] = draw(st.lists(st.deferred(lambda: msgin5g1_bodies()), max_size=3))
        else:
            body[name] = draw(json_values)
    return body


def json_bytes(body: Any) -> bytes:
    return json.dumps(body).encode()


_OPTION_NUMBERS = st.sampled_from([int(n) for n in OptionNumber]) | st.integers(0, 2**16 - 1)


@st.composite
def options(draw: st.DrawFn) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    for number in draw(st.lists(_OPTION_NUMBERS, max_size=6)):
        if number in (OptionNumber.BLOCK1, OptionNumber.BLOCK2):
            value = draw(
                st.builds(
                    lambda n, m, s: BlockOption(n, m, s).encode(),
                    st.integers(0, 2**20 - 1),
                    st.booleans(),
                    st.integers(0, 6),
                )
                | st.binary(max_size=4)
            )
        else:
            value = draw(st.binary(max_size=12))
        out.append((number, value))
    return out


@st.composite
def requests(draw: st.DrawFn, payloads: st.SearchStrategy[bytes] | None = None) -> Message:
    """A well-formed CoAP request (random method, MSGin5G-1 path, options, token, payload)."""
    path = draw(st.lists(st.sampled_from(("msgin5g", "v1", *RESOURCES, "x", "inbox")), max_size=4))
    if draw(st.booleans()):
        path = ["msgin5g", "v1", *path[:2]]
    opts = [(int(OptionNumber.URI_PATH), p.encode()) for p in path]
    if draw(st.booleans()):
        opts.append(
            (
                int(OptionNumber.CONTENT_FORMAT),
                draw(st.sampled_from((b"", b"\x32", b"\x00", b"\x2a"))),
            )
        )
    opts += draw(options())
    body = draw(payloads if payloads is not None else st.binary(max_size=64))
    return Message(
        draw(st.sampled_from((MessageType.CON, MessageType.NON))),
        draw(st.integers(1, 31)),
        draw(st.integers(0, 0xFFFF)),
        draw(st.binary(max_size=8)),
        tuple(sorted(opts, key=lambda o: o[0])),
        body,
    )


def encoded(message: Message) -> bytes:
    return encode(message)


def _ue() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"addrType": st.just("UE"), "addr": st.just(FUZZ_UE)})


_any_address = st.fixed_dictionaries(
    {
        "addrType": st.sampled_from(("UE", "AS", "GROUP", "TOPIC", "BC")),
        "addr": st.sampled_from((FUZZ_UE, "as-1", "g", "t")) | st.text(min_size=1, max_size=8),
    }
)
_ids = st.text(min_size=1, max_size=10)
_times = st.sampled_from(
    ("2020-01-01T00:00:00Z", "2099-01-01T00:00:00+01:00", "2099-01-01T00:00:00", "soon")
)
_TEMPLATES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "registrations": st.fixed_dictionaries(
        {"msgType": st.just("REG"), "ueSvcId": st.just(FUZZ_UE) | _ids},
        optional={"maxSegSize": st.integers(-5, 5000), "commAvail": json_values},
    ),
    "messages": st.fixed_dictionaries(
        {
            "msgType": st.just("MSG"),
            "oriAddr": _ue(),
            "destAddr": _any_address,
            "msgId": _ids,
        },
        optional={
            "payload": st.text(max_size=40),
            "stoAndFwInd": st.booleans(),
            "delivStReqInd": st.booleans(),
            "priority": st.sampled_from(("HIGH", "NORMAL", "LOW", "x")),
            "segInd": st.booleans(),
            "segParams": st.fixed_dictionaries(
                {},
                optional={
                    "segId": _ids,
                    "totalSegCount": st.integers(-2, 5),
                    "segNumb": st.integers(-2, 6),
                    "lastSegFlag": st.booleans(),
                },
            ),
            "stoAndFwParams": st.fixed_dictionaries({}, optional={"exprTime": _times}),
        },
    ),
    "reports": st.fixed_dictionaries(
        {
            "msgType": st.just("IMDN"),
            "oriAddr": _ue(),
            "destAddr": _any_address,
            "msgId": _ids,
            "delivSt": st.sampled_from(("REPT_DELY_SUCCESS", "REPT_DELY_FAILED", "?")),
        },
        optional={"failureCause": st.text(max_size=8)},
    ),
    "segments": st.fixed_dictionaries(
        {"msgType": st.sampled_from(("SEGREC", "SEGCONFIR")), "segId": _ids},
        optional={"missing": st.lists(st.integers(-3, 2**40), max_size=5)},
    ),
    "topics": st.fixed_dictionaries(
        {
            "msgType": st.sampled_from(("TOPICSUB", "TOPICUNSUB")),
            "oriAddr": _ue(),
            "msgTopics": st.lists(st.text(max_size=8), max_size=4),
        },
        optional={"exprTime": _times},
    ),
}


@st.composite
def valid_ish_bodies(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """(resource, body): a well-typed MSGin5G-1 body for its resource, then at most one field
    dropped or replaced by a value of a random type."""
    resource = draw(st.sampled_from(sorted(_TEMPLATES)))
    body = draw(_TEMPLATES[resource])
    if resource == "messages" and draw(st.integers(0, 9)) == 0:
        body = {"msgType": "MSG", "aggregated": draw(st.lists(_TEMPLATES["messages"], max_size=3))}
    mutation = draw(st.sampled_from(("none", "none", "drop", "retype")))
    if mutation != "none" and body:
        name = draw(st.sampled_from(sorted(body)))
        if mutation == "drop":
            del body[name]
        else:
            body[name] = draw(json_values)
    return resource, body
