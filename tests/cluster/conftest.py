# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the cluster tests: a private nats-server, a fresh PostgreSQL schema, instances."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.cluster_procs import NATS_SERVER, Cluster, NatsServer
from tests.contract.postgres_db import drop_schema_sync, new_schema_name


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    if NATS_SERVER is None:
        pytest.skip("nats-server is not installed (Debian package nats-server)")
    server = NatsServer(tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cluster(tmp_path: Path, nats_server: NatsServer) -> Iterator[Cluster]:
    schema = new_schema_name()
    instances = Cluster(tmp_path, schema, nats_server.url)
    try:
        yield instances
    finally:
        instances.stop()
        drop_schema_sync(schema)
