"""Weighted draws from cumulative weights: the same stream of draws as `random.choices` gives."""

from __future__ import annotations

import random

from synthetic.draws import cumulative, pick


def test_pick_draws_as_random_choices():
    items = ("a", "b", "c", "d")
    weights = (85, 5, 4, 6)
    cum = cumulative(weights)
    ours, theirs = random.Random(3), random.Random(3)
    drawn = [pick(ours, items, cum) for _ in range(5000)]
    assert drawn == [theirs.choices(items, weights=weights)[0] for _ in range(5000)]
    assert set(drawn) == set(items)  # every item is reachable, the rare ones too
