# SPDX-License-Identifier: Apache-2.0
"""The Non-3GPP Message Gateway: MSGG_N3GDelivery toward an MQTT broker (needs the `mqtt` extra).

Import :mod:`msgin5g.gateways.mqtt.gateway` explicitly; this package stays import-light so the
server never pulls in aiomqtt.
"""

__all__: list[str] = []
