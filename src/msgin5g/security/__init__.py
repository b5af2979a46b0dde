# SPDX-License-Identifier: Apache-2.0
"""Authentication, authorization and admission limits of the HTTP APIs (TS 29.538 clause 10,
TS 33.122 / RFC 6749 client credentials, RFC 6750 bearer tokens; ADR 0015)."""
