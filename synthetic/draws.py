"""Weighted draws without `random.choices`' per-call overhead (the same draw for the same generator state)."""

from __future__ import annotations

import itertools
import random
from bisect import bisect
from collections.abc import Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")


def cumulative(weights: Iterable[float]) -> list[float]:
    return list(itertools.accumulate(weights))


def pick(rng: random.Random, items: Sequence[T], cum: Sequence[float]) -> T:
    """`rng.choices(items, cum_weights=cum)[0]`, drawing exactly as it does (one `rng.random()`)."""
    return items[bisect(cum, rng.random() * (cum[-1] + 0.0), 0, len(cum) - 1)]
