# SPDX-License-Identifier: Apache-2.0
"""A private nats-server with JetStream and `msgin5g server` instances sharing one PostgreSQL
schema and that NATS (ADR 0018), for the cluster tests and scripts/bench/cluster.py."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.contract.postgres_db import PG_URL
from tests.support.procs import ServerProcess, free_port, wait_tcp

NATS_SERVER = shutil.which("nats-server") or (
    "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
)

FAST_CLUSTER = {
    "MSGIN5G_CLUSTER_HEARTBEAT_S": "0.5",
    "MSGIN5G_CLUSTER_LEASE_TTL_S": "3",
    "MSGIN5G_CLUSTER_RESCAN_S": "1",
}


@dataclass
class NatsServer:
    """`nats-server -js` on a free loopback port, its store under `store_dir`."""

    store_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        assert NATS_SERVER is not None
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                NATS_SERVER,
                "-js",
                "-sd",
                str(self.store_dir),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_tcp(self.port, "nats-server")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@dataclass
class Cluster:
    """Instances named i0, i1, ... on one PostgreSQL schema and one NATS server."""

    root: Path
    schema: str
    nats_url: str
    env: Mapping[str, str] = field(default_factory=dict)
    instances: list[ServerProcess] = field(default_factory=list)

    def start_instance(self) -> ServerProcess:
        n = len(self.instances)
        server = ServerProcess(
            self.root / f"i{n}",
            env={
                **FAST_CLUSTER,
                "MSGIN5G_STORE_SCHEMA": self.schema,
                "MSGIN5G_CLUSTER_INSTANCE_ID": f"i{n}",
                **self.env,
            },
            args=("--store", PG_URL, "--nats", self.nats_url),
        )
        self.instances.append(server)
        return server.start()

    def stop(self) -> None:
        for server in self.instances:
            server.stop()
