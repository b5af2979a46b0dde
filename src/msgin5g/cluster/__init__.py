# SPDX-License-Identifier: Apache-2.0
"""Several server instances on one PostgreSQL store (ADR 0018): shard leases decide which
instance runs which delivery lane, NATS JetStream rings the owner's doorbell, and a sync
subject keeps the in-memory registries of every instance current."""
