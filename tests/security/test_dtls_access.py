# SPDX-License-Identifier: Apache-2.0
"""Who may act as which ueSvcId over MSGin5G-1 (UeAccess, ADR 0016), and the CoAP codes the
refusals map to: 4.01 UNAUTHENTICATED, 4.03 NOT_OWNER."""

from __future__ import annotations

import json

import pytest

from msgin5g.api.coap_msgin5g1 import UeAccess, Unauthenticated, error_response
from msgin5g.coap import Code
from msgin5g.core.errors import Forbidden

ACCESS = UeAccess({"dev-1": "ue-1", "dev-2": "ue-2"})


@pytest.mark.parametrize(
    ("identity", "ue", "refusal"),
    [
        (None, "ue-9", None),  # not provisioned: plain CoAP as before
        (None, "ue-1", Unauthenticated),  # provisioned: only over DTLS
        ("dev-1", "ue-1", None),
        ("dev-1", "ue-2", Forbidden),
        ("dev-1", "ue-9", Forbidden),  # an identity acts as its own UE only
        ("dev-3", "ue-9", Forbidden),  # an identity without a mapping acts as nobody
    ],
)
def test_ownership(identity: str | None, ue: str, refusal: type[Exception] | None) -> None:
    if refusal is None:
        ACCESS.check(identity, ue)
        return
    with pytest.raises(refusal) as caught:
        ACCESS.check(identity, ue)
    response = error_response(caught.value)
    body = json.loads(response.payload)
    if refusal is Unauthenticated:
        assert response.code == Code.UNAUTHORIZED
        assert body["cause"] == "UNAUTHENTICATED"
    else:
        assert response.code == Code.FORBIDDEN
        assert body["cause"] == "NOT_OWNER"
    assert ue in body["detail"]


def test_provisioned_and_owned() -> None:
    assert ACCESS.provisioned == {"ue-1", "ue-2"}
    assert ACCESS.owned("dev-2") == "ue-2"
    assert ACCESS.owned("dev-9") is None
    assert not ACCESS.require_dtls
    assert UeAccess(require_dtls=True).require_dtls
