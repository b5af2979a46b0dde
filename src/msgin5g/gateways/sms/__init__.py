# SPDX-License-Identifier: Apache-2.0
"""The SMS side of the Legacy 3GPP Message Gateway: SMPP 3.4 toward an SMSC.

* :mod:`.encoding` and :mod:`.concat`: GSM 7-bit / UCS-2 text and concatenation (TS 23.038,
  TS 23.040), sans-IO.
* :mod:`.receipts`: delivery receipts (SMPP 3.4 Appendix B, TLVs 0x001E and 0x0427), sans-IO.
* :mod:`.smpp_protocol`: the SMPP 3.4 PDU codec, sans-IO.
* :mod:`.smpp_session`: the asyncio ESME (one bind, a pool of binds).
* :mod:`.smsc_sim`: the SMSC simulator used by tests and benchmarks (import it explicitly).
"""

from msgin5g.gateways.sms.concat import IncompleteMessage, ReassembledMessage, Reassembler
from msgin5g.gateways.sms.encoding import (
    DATA_CODING_DEFAULT,
    DATA_CODING_UCS2,
    ConcatInfo,
    SmsEncodingError,
    SmsPart,
    UserData,
    decode_payload,
    parse_user_data,
    split_text,
)
from msgin5g.gateways.sms.receipts import (
    DeliveryReceipt,
    ReceiptOutcome,
    ReceiptParseError,
    is_receipt,
    parse_receipt,
)
from msgin5g.gateways.sms.smpp_protocol import DeliverSm
from msgin5g.gateways.sms.smpp_session import (
    DeliverHandler,
    SmppBindRefused,
    SmppConfig,
    SmppConnectionLost,
    SmppError,
    SmppNotBound,
    SmppPool,
    SmppSession,
    SmppSubmitError,
    SmppTimeout,
    SubmitOptions,
)

__all__ = [
    "DATA_CODING_DEFAULT",
    "DATA_CODING_UCS2",
    "ConcatInfo",
    "DeliverHandler",
    "DeliverSm",
    "DeliveryReceipt",
    "IncompleteMessage",
    "ReassembledMessage",
    "Reassembler",
    "ReceiptOutcome",
    "ReceiptParseError",
    "SmppBindRefused",
    "SmppConfig",
    "SmppConnectionLost",
    "SmppError",
    "SmppNotBound",
    "SmppPool",
    "SmppSession",
    "SmppSubmitError",
    "SmppTimeout",
    "SmsEncodingError",
    "SmsPart",
    "SubmitOptions",
    "UserData",
    "decode_payload",
    "is_receipt",
    "parse_receipt",
    "parse_user_data",
    "split_text",
]
