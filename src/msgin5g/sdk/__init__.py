# SPDX-License-Identifier: Apache-2.0
"""Async client SDK: `UeClient` for UE applications (MSGin5G-1 over CoAP) and `AsClient` for
Application Servers (MSGin5G-3 over HTTP/2)."""

from msgin5g.sdk.as_client import AsClient
from msgin5g.sdk.ue import SdkError, UeClient, parse_address, parse_coap_uri

__all__ = ["AsClient", "SdkError", "UeClient", "parse_address", "parse_coap_uri"]
