"""Aggregation for the timeline report: positions into buckets, blocks into functions.

Pure functions over plain data (no session), so the report's numbers are tested on their
own. A run of N instructions is cut into at most ``count`` buckets of equal size (the last
one shorter); everything the page draws is either an individual event (a system call, a
watched write: each at its exact position, drawn per pixel column by the page) or a
per-bucket aggregate (function activity), so a billion-instruction run costs the page no more
than a short one.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["Buckets", "FunctionActivity", "bin_positions", "function_activity"]


@dataclass(frozen=True)
class Buckets:
    """``[start, end)`` cut into buckets of ``size`` instructions (the last one shorter)."""

    start: int
    end: int
    size: int

    @classmethod
    def cover(cls, start: int, end: int, count: int) -> Buckets:
        """At most ``count`` (>= 1) equal buckets covering ``[start, end)`` (end > start)."""
        if count < 1:
            raise ValueError("the bucket count must be at least 1")
        if end <= start:
            raise ValueError(f"empty range {start}..{end}")
        span = end - start
        return cls(start, end, max(1, -(-span // count)))

    def __len__(self) -> int:
        return -(-(self.end - self.start) // self.size)

    def bounds(self, index: int) -> tuple[int, int]:
        """``[first, end)`` positions of bucket ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        first = self.start + index * self.size
        return first, min(first + self.size, self.end)

    def index(self, position: int) -> int:
        """The bucket holding ``position`` (clamped into the range)."""
        if position <= self.start:
            return 0
        return min((position - self.start) // self.size, len(self) - 1)

    def edges(self) -> list[int]:
        """Every bucket's first position, then the end."""
        return [self.start + i * self.size for i in range(len(self))] + [self.end]


@dataclass
class FunctionActivity:
    """One function's activity: per active bucket, how many distinct blocks of it ran."""

    name: str
    start: int  # its address (0: code outside any known symbol, grouped by region)
    buckets: list[int] = field(default_factory=list)  # active bucket indices, increasing
    blocks: list[int] = field(default_factory=list)  # distinct blocks run, per active bucket

    @property
    def first(self) -> int:
        return self.buckets[0] if self.buckets else -1

    @property
    def weight(self) -> int:
        return sum(self.blocks)


def function_activity(per_bucket: Sequence[Iterable[tuple[int, int]]],
                      symbol_at: Callable[[int], tuple[str, int] | None]
                      ) -> list[FunctionActivity]:
    """Which functions ran in which bucket.

    ``per_bucket[i]`` holds the (start, size) blocks executed in bucket i; ``symbol_at(pc)``
    names the function containing pc, as (name, start), or None (the block then counts for
    ``??``). A block is attributed to the function holding its first byte. Functions come
    back in the order they first ran (ties by address), each with its active buckets in
    increasing order.
    """
    cache: dict[int, tuple[str, int]] = {}
    out: dict[str, FunctionActivity] = {}
    for index, blocks in enumerate(per_bucket):
        counts: dict[str, int] = {}
        starts: dict[str, int] = {}
        for start, _size in blocks:
            hit = cache.get(start)
            if hit is None:
                hit = symbol_at(start) or ("??", 0)
                cache[start] = hit
            counts[hit[0]] = counts.get(hit[0], 0) + 1
            starts[hit[0]] = hit[1]
        for name in sorted(counts, key=lambda n: (starts[n], n)):
            act = out.get(name)
            if act is None:
                act = out[name] = FunctionActivity(name, starts[name])
            act.buckets.append(index)
            act.blocks.append(counts[name])
    return sorted(out.values(), key=lambda a: (a.first, a.start, a.name))


def bin_positions(positions: Sequence[int], buckets: Buckets) -> list[int]:
    """How many of ``positions`` (sorted) fall in each bucket (outside the range: none)."""
    edges = buckets.edges()
    lo = bisect.bisect_left(positions, buckets.start)
    hi = bisect.bisect_left(positions, buckets.end)
    counts = [0] * len(buckets)
    for i in range(len(buckets)):
        a = max(lo, bisect.bisect_left(positions, edges[i], lo, hi))
        b = bisect.bisect_left(positions, edges[i + 1], lo, hi)
        counts[i] = b - a
    return counts
