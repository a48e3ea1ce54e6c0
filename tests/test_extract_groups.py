"""Extraction's fan-out groups shards into a bounded number of tasks (issue 21): never across datasets, in
order, every shard exactly once, about ``max_tasks`` groups whatever the number of shards."""

from __future__ import annotations

from pipelines.flows.steps import shard_groups
from tinyemo_core.store.features import ShardPlan


def _plans(counts: dict[str, int]) -> list[tuple[str, ShardPlan]]:
    return [(name, ShardPlan(f"part-{name}-{i}.arrow", (f"{name}{i}",), (f"/x/{name}{i}.jpg",)))
            for name, n in counts.items() for i in range(n)]


def test_groups_are_bounded_ordered_and_never_span_datasets() -> None:
    plans = _plans({"a": 20_000, "b": 7, "c": 1})
    groups = shard_groups(plans, 256)
    assert len(groups) <= 256 + 2
    assert [p for g in groups for p in g] == plans  # every shard once, in order
    assert all(len({name for name, _ in g}) == 1 for g in groups)
    assert max(len(g) for g in groups) == -(-len(plans) // 256)
    assert shard_groups(_plans({"a": 5}), 256) == [[p] for p in _plans({"a": 5})]  # few shards: one each
    assert shard_groups([], 4) == []
