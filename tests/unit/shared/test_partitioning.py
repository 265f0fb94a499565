"""The outbox relay packs record batches per partition itself; it must pick the partition
aiokafka's `send` (and Kafka's Java client) would, or one key's events would move partitions."""

from __future__ import annotations

import uuid

from aiokafka.partitioner import DefaultPartitioner

from ccshared.outbox import partition_for


def test_partition_for_matches_the_default_partitioner() -> None:
    keys = [str(uuid.uuid4()).encode() for _ in range(2000)] + [b"", b"a", "客户-42".encode()]
    for partitions in (1, 2, 6, 7, 12):
        expected = [DefaultPartitioner()(k, list(range(partitions)), []) for k in keys]
        assert [partition_for(k, partitions) for k in keys] == expected
    # With six partitions the keys do spread (a constant answer would pass for one partition).
    assert len({partition_for(k, 6) for k in keys}) == 6
