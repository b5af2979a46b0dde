# SPDX-License-Identifier: Apache-2.0
"""CoAP over UDP for MSGin5G-1 (RFC 7252, RFC 7641 Observe, RFC 7959 block-wise).

A small message layer of our own: :mod:`.message` and :mod:`.block` are sans-IO, and
:mod:`.endpoint` drives them on asyncio as a server (:class:`CoapEndpoint`) and a client
(:class:`CoapClient`).
"""

from msgin5g.coap.endpoint import (
    Address,
    ClientObservation,
    CoapClient,
    CoapEndpoint,
    CoapRequest,
    CoapResponse,
    EndpointConfig,
    Observation,
    RequestHandler,
)
from msgin5g.coap.message import (
    BlockOption,
    CoapBlockError,
    CoapError,
    CoapFormatError,
    CoapResetError,
    CoapTimeoutError,
    Code,
    ContentFormat,
    Message,
    MessageType,
    OptionNumber,
    TransmissionParameters,
    decode,
    encode,
    format_code,
)

__all__ = [
    "Address",
    "BlockOption",
    "ClientObservation",
    "CoapBlockError",
    "CoapClient",
    "CoapEndpoint",
    "CoapError",
    "CoapFormatError",
    "CoapRequest",
    "CoapResetError",
    "CoapResponse",
    "CoapTimeoutError",
    "Code",
    "ContentFormat",
    "EndpointConfig",
    "Message",
    "MessageType",
    "Observation",
    "OptionNumber",
    "RequestHandler",
    "TransmissionParameters",
    "decode",
    "encode",
    "format_code",
]
