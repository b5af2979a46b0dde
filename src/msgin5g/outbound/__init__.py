# SPDX-License-Identifier: Apache-2.0
"""Outbound HTTP: the server as a client of AS callbacks, gateways and peer servers."""
