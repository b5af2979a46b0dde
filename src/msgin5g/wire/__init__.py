# SPDX-License-Identifier: Apache-2.0
"""TS 29.538 JSON shapes as msgspec Structs: field names exactly as on the wire, no behaviour."""
