# SPDX-License-Identifier: Apache-2.0
"""The project's own OpenAPI document, generated from our wire Structs (not copied from 3GPP).

It lists the TS 29.538 operations this server implements and marks everything that is ours
(operations endpoints, the AS callback binding) with `x-msgin5g-extension: true`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from msgin5g import __version__
from msgin5g.wire.common import DeliveryStatusReport
from msgin5g.wire.ext import (
    GatewayUeRegistration,
    GatewayUeRegistrationAck,
    Group,
    GroupDefinition,
)
from msgin5g.wire.msgg import GatewayMessageDelivery
from msgin5g.wire.msgs import (
    ASMessageDelivery,
    ASRegistration,
    ASRegistrationAck,
    MessageDeliveryAck,
    UEMessageDelivery,
)
from msgin5g.wire.problem import ProblemDetails
from msgin5g.wire.topics import (
    TopicListNotification,
    TopicListSubscription,
    TopicListSubscriptionAck,
    TopicListUnsubscription,
    TopicSubscription,
    TopicSubscriptionAck,
    TopicUnsubscription,
)

_REF = "#/components/schemas/{name}"


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(name=name)}}}


def _problem() -> dict[str, Any]:
    return {
        "description": "Error (TS 29.500 5.2.7)",
        "content": {
            "application/problem+json": {"schema": {"$ref": _REF.format(name="ProblemDetails")}}
        },
    }


def _post(
    summary: str, request: str, status: str, response: str | None, **extra: Any
) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": summary}
    if response:
        ok["content"] = _json(response)
    op: dict[str, Any] = {
        "summary": summary,
        "requestBody": {"required": True, "content": _json(request)},
        "responses": {status: ok, "default": _problem()},
    }
    op.update(extra)
    return {"post": op}


def document() -> dict[str, Any]:
    """Build the OpenAPI 3.1 document served at /openapi.json."""
    _, components = msgspec.json.schema_components(
        [
            ASRegistration,
            ASRegistrationAck,
            ASMessageDelivery,
            UEMessageDelivery,
            MessageDeliveryAck,
            DeliveryStatusReport,
            GatewayMessageDelivery,
            GatewayUeRegistration,
            GatewayUeRegistrationAck,
            Group,
            GroupDefinition,
            TopicListSubscription,
            TopicListSubscriptionAck,
            TopicListUnsubscription,
            TopicListNotification,
            TopicSubscription,
            TopicSubscriptionAck,
            TopicUnsubscription,
            ProblemDetails,
        ],
        ref_template=_REF,
    )
    ext = {"x-msgin5g-extension": True}
    paths: dict[str, Any] = {
        "/msgs-asregistration/v1/registrations": _post(
            "MSGS_ASRegistration_Request", "ASRegistration", "201", "ASRegistrationAck"
        ),
        "/msgs-asregistration/v1/registrations/{registrationId}": {
            "delete": {
                "summary": "MSGS_ASRegistration_Deregister",
                "parameters": [
                    {
                        "name": "registrationId",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {"204": {"description": "Deleted"}, "default": _problem()},
            }
        },
        "/msgs-msgdelivery/v1/deliver-as-message": _post(
            "MSGS_MSGDelivery_ASODelivery", "ASMessageDelivery", "200", "MessageDeliveryAck"
        ),
        "/msgs-msgdelivery/v1/deliver-ue-message": _post(
            "MSGS_MSGDelivery_UEODelivery", "UEMessageDelivery", "200", "MessageDeliveryAck"
        ),
        "/msgs-msgdelivery/v1/deliver-report": _post(
            "MSGS_MSGDelivery_ASODeliveryReport / UEODeliveryReport",
            "DeliveryStatusReport",
            "200",
            "MessageDeliveryAck",
        ),
        "/ext-gwueregistration/v1/registrations": _post(
            "Non-MSGin5G UE registration by a gateway (TS 23.554 8.2.3; our extension)",
            "GatewayUeRegistration",
            "201",
            "GatewayUeRegistrationAck",
            **ext,
        ),
        "/ext-gwueregistration/v1/registrations/{registrationId}": {
            "delete": {
                "summary": "Non-MSGin5G UE deregistration by a gateway (our extension)",
                "parameters": [
                    {
                        "name": "registrationId",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {"204": {"description": "Deleted"}, "default": _problem()},
                **ext,
            }
        },
        "/ext-groups/v1/groups/{groupId}": {
            "parameters": [
                {"name": "groupId", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "put": {
                "summary": "Create or replace an MSGin5G group (TS 23.554 8.7.4; our extension)",
                "requestBody": {"required": True, "content": _json("GroupDefinition")},
                "responses": {
                    "201": {"description": "Created", "content": _json("Group")},
                    "200": {"description": "Replaced", "content": _json("Group")},
                    "default": _problem(),
                },
                **ext,
            },
            "get": {
                "summary": "Read a group",
                "responses": {
                    "200": {"description": "The group", "content": _json("Group")},
                    "default": _problem(),
                },
                **ext,
            },
            "delete": {
                "summary": "Delete a group",
                "responses": {"204": {"description": "Deleted"}, "default": _problem()},
                **ext,
            },
        },
        "/msgs-topiclistevent/v1/topiclist-subscriptions": _post(
            "MSGS_TopiclistEvent_SubscribeMSGTopiclist",
            "TopicListSubscription",
            "201",
            "TopicListSubscriptionAck",
            callbacks={
                "MessagingTopicListNotification": {
                    "{$request.body#/notificationURI}": _post(
                        "Topic list changes (CREATED / DELETED)",
                        "TopicListNotification",
                        "204",
                        None,
                    )
                }
            },
        ),
        "/msgs-topiclistevent/v1/topiclist-subscriptions/{subscriptionId}": {
            "parameters": [
                {
                    "name": "subscriptionId",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                }
            ],
            **_post("Unsubscribe from the topic list", "TopicListUnsubscription", "204", None),
        },
        "/msgs-topiclistevent/v1/request-topic-subscription": _post(
            "Subscribe to Messaging Topics (oriAddr: the UE or AS subscriber)",
            "TopicSubscription",
            "200",
            "TopicSubscriptionAck",
        ),
        "/msgs-topiclistevent/v1/request-topic-unsubscription": _post(
            "Unsubscribe from Messaging Topics", "TopicUnsubscription", "204", None
        ),
        "/healthz": {
            "get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}, **ext}
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: store open and workers running",
                "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
                **ext,
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "text exposition format"}},
                **ext,
            }
        },
    }
    callbacks = {
        "{$request.body#/targetUri}/deliver-message": _post(
            "Server to AS message delivery (our binding, DESIGN 2.2)",
            "GatewayMessageDelivery",
            "204",
            None,
            **ext,
        ),
        "{$request.body#/targetUri}/deliver-report": _post(
            "Server to AS delivery status report (our binding, DESIGN 2.2)",
            "DeliveryStatusReport",
            "204",
            None,
            **ext,
        ),
    }
    paths["/msgs-asregistration/v1/registrations"]["post"]["callbacks"] = {"asDelivery": callbacks}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "msgin5g MSGin5G Server",
            "version": __version__,
            "description": "TS 29.538 Rel-18 MSGS APIs as implemented by msgin5g, plus the"
            " extensions marked x-msgin5g-extension.",
        },
        "paths": paths,
        "components": {"schemas": components},
    }
