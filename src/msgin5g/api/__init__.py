# SPDX-License-Identifier: Apache-2.0
"""The HTTP side: a raw ASGI app serving the TS 29.538 APIs (no framework on the hot path)."""
