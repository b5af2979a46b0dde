# SPDX-License-Identifier: Apache-2.0
"""The configured clients (`[[auth.clients]]`): grants by client id, secrets as hashes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from msgin5g.security.principal import DEFAULT_SCOPES, Principal


@dataclass(frozen=True, slots=True)
class ConfiguredClient:
    principal: Principal
    """Everything the client may ever be granted; a token narrows the scopes."""
    secret_hash: str = ""
    """Empty: the client gets tokens from an external issuer only (jwks mode)."""


class ClientRegistry:
    """Lookup of configured clients; also the `ClientLookup` of the token validator."""

    def __init__(self, clients: Iterable[ConfiguredClient]) -> None:
        self._by_id = {c.principal.client_id: c for c in clients}

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, client_id: str) -> ConfiguredClient | None:
        return self._by_id.get(client_id)

    def principal(self, client_id: str) -> Principal | None:
        client = self._by_id.get(client_id)
        return client.principal if client is not None else None


def configured_client(
    client_id: str,
    role: str,
    *,
    secret_hash: str = "",
    scopes: Iterable[str] = (),
    as_svc_ids: Iterable[str] = (),
    addresses: Iterable[str] = (),
) -> ConfiguredClient:
    """A client from its config entry; no scopes listed means the role's default scopes."""
    return ConfiguredClient(
        Principal(
            client_id=client_id,
            role=role,
            scopes=frozenset(scopes) or DEFAULT_SCOPES[role],
            as_svc_ids=frozenset(as_svc_ids),
            addresses=tuple(addresses),
        ),
        secret_hash,
    )
