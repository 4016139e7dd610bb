"""The timeline report's aggregation (``syxdbg_plugins.timeline.buckets``), on its own."""

from __future__ import annotations

import pytest
from syxdbg_plugins.timeline import Buckets, bin_positions, function_activity


def test_buckets_cover_the_range_exactly() -> None:
    b = Buckets.cover(100, 1100, 3)
    assert b.size == 334 and len(b) == 3
    assert [b.bounds(i) for i in range(3)] == [(100, 434), (434, 768), (768, 1100)]
    assert b.edges() == [100, 434, 768, 1100]
    assert b.index(100) == 0 and b.index(433) == 0 and b.index(434) == 1
    assert b.index(1099) == 2 and b.index(5000) == 2 and b.index(0) == 0
    # fewer positions than buckets: one position per bucket
    small = Buckets.cover(0, 5, 500)
    assert small.size == 1 and len(small) == 5
    # a hundred million positions in 500 buckets
    big = Buckets.cover(0, 105_066_102, 500)
    assert len(big) == 500 and big.bounds(499)[1] == 105_066_102
    with pytest.raises(IndexError):
        big.bounds(500)
    with pytest.raises(ValueError):
        Buckets.cover(10, 10, 5)
    with pytest.raises(ValueError):
        Buckets.cover(0, 10, 0)


def test_bin_positions_counts_per_bucket() -> None:
    b = Buckets.cover(0, 100, 4)  # 25 each
    assert bin_positions([0, 1, 24, 25, 50, 99, 100, 150], b) == [3, 1, 1, 1]
    assert bin_positions([], b) == [0, 0, 0, 0]


def test_function_activity_attributes_blocks_to_functions() -> None:
    symbols = {0x1000: ("main", 0x1000), 0x1010: ("main", 0x1000),
               0x2000: ("helper", 0x2000), 0x3000: ("late", 0x3000)}

    def symbol_at(pc: int) -> tuple[str, int] | None:
        return symbols.get(pc)

    per_bucket = [
        [(0x1000, 16), (0x1010, 4)],          # main: 2 blocks
        [(0x2000, 8), (0x1010, 4)],           # helper, main
        [],                                   # nothing (a bucket cut short)
        [(0x3000, 2), (0x9000, 4), (0x2000, 8)],  # late, an unknown block, helper
    ]
    acts = function_activity(per_bucket, symbol_at)
    by = {a.name: a for a in acts}
    assert by["main"].buckets == [0, 1] and by["main"].blocks == [2, 1]
    assert by["helper"].buckets == [1, 3] and by["helper"].blocks == [1, 1]
    assert by["late"].buckets == [3] and by["??"].buckets == [3]
    assert by["main"].weight == 3 and by["main"].first == 0
    # order: first bucket, then address
    assert [a.name for a in acts] == ["main", "helper", "??", "late"]
