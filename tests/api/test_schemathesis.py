# SPDX-License-Identifier: Apache-2.0
"""Schemathesis v4 (the `st` CLI) against the real server, reading the official files in place.

The five checks below must all pass, for both MSGS files, in every phase. Two hooks keep the
generated data meaningful without narrowing the checks:

* positive bodies of deliver-as-message / deliver-ue-message get `oriAddr.addrType` "AS" /
  "UE". The schema allows any string there, but the server answers 400 for a sender of the
  wrong kind (as it must), so without this hardly any positive case would reach the 200 path
  and its MessageDeliveryAck would go unchecked;
* every other positive DELETE /registrations/{registrationId} gets the id of a registration
  made just before, so the 204 path is exercised as well as the 404; likewise every other
  positive POST /topiclist-subscriptions/{subscriptionId} gets a topic-list subscription made
  just before by the same oriAddr;
* positive topic (un)subscriptions get `oriAddr.addrType` "AS" (the subscriber is a UE or an
  AS, ADR 0011) and non-empty topic names; positive topic-list subscriptions get an http
  `notificationURI` (a closed port); a positive `exprTime` is put an hour ahead. The schema
  allows any string / date there, but the server must refuse a callback it cannot POST to and
  an expiry already past, so without this the 200/201 paths would hardly be reached.

Negative cases are never touched. The HAR report then proves that each operation answered both
a success and an error, on the path the file's servers url gives.
"""

from __future__ import annotations

import collections
import textwrap
from pathlib import Path

import pytest
from tests.support import oas, st
from tests.support.procs import ServerProcess

HOOKS = textwrap.dedent(
    '''
    """Schemathesis hooks written by tests/api/test_schemathesis.py (positive cases only)."""
    import datetime
    import itertools
    import os

    import httpx
    import schemathesis
    from schemathesis import GenerationMode

    SERVER = os.environ["MSGIN5G_ST_SERVER"]
    ORIGINATOR = {
        "/deliver-as-message": "AS",
        "/deliver-ue-message": "UE",
        "/request-topic-subscription": "AS",
        "/request-topic-unsubscription": "AS",
    }
    TOPICLIST = f"{SERVER}/msgs-topiclistevent/v1/topiclist-subscriptions"
    _deletes = itertools.count()
    _unsubscribes = itertools.count()
    _names = itertools.count()


    def _topic_case(case, body):
        if "exprTime" in body:
            ahead = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
            body["exprTime"] = ahead.isoformat()
        if isinstance(body.get("msgTopics"), list):
            body["msgTopics"] = [t or "topic" for t in body["msgTopics"]]
        if case.path == "/topiclist-subscriptions":
            body["notificationURI"] = f"http://127.0.0.1:9/notify/{next(_names)}"
        elif case.path.startswith("/topiclist-subscriptions/") and next(_unsubscribes) % 2 == 0:
            response = httpx.post(
                TOPICLIST,
                json={
                    "oriAddr": body["oriAddr"],
                    "destAddr": body["destAddr"],
                    "notificationURI": "http://127.0.0.1:9/notify",
                },
            )
            if response.status_code == 201:
                params = dict(case.path_parameters or {})
                params["subscriptionId"] = response.headers["location"].rsplit("/", 1)[1]
                case.path_parameters = params


    @schemathesis.hook
    def map_case(context, case):
        meta = case.meta
        if meta is None or meta.generation.mode is not GenerationMode.POSITIVE:
            return case
        kind = ORIGINATOR.get(case.path)
        body = case.body
        if kind and isinstance(body, dict) and isinstance(body.get("oriAddr"), dict):
            body["oriAddr"]["addrType"] = kind
        if case.path.startswith(("/request-topic-", "/topiclist-")) and isinstance(body, dict):
            _topic_case(case, body)
        elif case.method == "DELETE" and next(_deletes) % 2 == 0:
            response = httpx.post(
                f"{SERVER}/msgs-asregistration/v1/registrations",
                json={"asSvcId": f"schemathesis-{next(_names)}"},
            )
            params = dict(case.path_parameters or {})
            params["registrationId"] = response.headers["location"].rsplit("/", 1)[1]
            case.path_parameters = params
        return case
    '''
)


@pytest.mark.parametrize("api_name", sorted(oas.SPEC_FILES))
def test_schemathesis_checks_pass(server: ServerProcess, tmp_path: Path, api_name: str) -> None:
    raw = st.run(
        oas.spec_path(api_name),
        f"{server.url}/{api_name}/v1",
        tmp_path,
        hooks=("msgin5g_st_hooks", HOOKS),
        log=server.log,
        env={"MSGIN5G_ST_SERVER": server.url},
        timeout=180,
    )
    statuses: dict[tuple[str, str], set[int]] = collections.defaultdict(set)
    for (method, operation), seen in raw.items():
        if operation.startswith("/registrations/"):
            operation = "/registrations/{registrationId}"
        elif operation.startswith("/topiclist-subscriptions/"):
            operation = "/topiclist-subscriptions/{subscriptionId}"
        statuses[(method, operation)] |= seen
    expected = {
        "msgs-asregistration": {
            ("POST", "/registrations"): 201,
            ("DELETE", "/registrations/{registrationId}"): 204,
        },
        "msgs-msgdelivery": {
            ("POST", "/deliver-as-message"): 200,
            ("POST", "/deliver-ue-message"): 200,
            ("POST", "/deliver-report"): 200,
        },
        "msgs-topiclistevent": {
            ("POST", "/topiclist-subscriptions"): 201,
            ("POST", "/topiclist-subscriptions/{subscriptionId}"): 204,
            ("POST", "/request-topic-subscription"): 200,
            ("POST", "/request-topic-unsubscription"): 204,
        },
    }[api_name]
    for operation, success in expected.items():
        st.assert_success_and_client_error(statuses[operation], success, operation)
