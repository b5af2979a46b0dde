# SPDX-License-Identifier: Apache-2.0
"""The public surface of msgin5g.gateways.sms: every name in each ``__all__`` exists."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "msgin5g.gateways.sms",
    "msgin5g.gateways.sms.concat",
    "msgin5g.gateways.sms.encoding",
    "msgin5g.gateways.sms.receipts",
    "msgin5g.gateways.sms.smpp_protocol",
    "msgin5g.gateways.sms.smpp_session",
    "msgin5g.gateways.sms.smsc_sim",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported)
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == []


def test_package_does_not_import_the_simulator() -> None:
    # so that `python -m msgin5g.gateways.sms.smsc_sim` runs without a runpy warning
    package = importlib.import_module("msgin5g.gateways.sms")
    assert "SmscSimulator" not in package.__all__
