"""SQLiteStore.write's batched points: order, exact values and kind conflicts in one batch."""

from __future__ import annotations

import math
from pathlib import Path

from logbridge import _events as ev
from logbridge._store import SQLiteStore

EDGE_VALUES = [
    0.1,
    -0.0,
    math.inf,
    -math.inf,
    math.nan,
    True,
    False,
    0,
    2**63 - 1,
    -(2**63),
    2**64,
    -(2**70),
    "0.5",
    "",
]


def _point(name: str, value: object, step: int | None, when: float) -> ev.MetricLogged:
    return ev.MetricLogged("run", name, "scalar", value, step, when)


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return type(a) is type(b) and a == b


def test_interleaved_metrics_of_every_value_type_keep_their_order_and_values(store: Path) -> None:
    """One batch of 3 x 257 interleaved points (more than one multi-row statement, and a
    remainder) comes back per metric in logged order, every value exact: -0.0 keeps its sign,
    NaN and the infinities their kind, bools stay bools, integers beyond 64 bits stay exact."""
    db = SQLiteStore(store)
    names = ("b/loss", "a/acc", "c/edge")
    events = []
    expected: dict[str, list[object]] = {name: [] for name in names}
    for i in range(257):
        for j, name in enumerate(names):
            value = EDGE_VALUES[(i + j) % len(EDGE_VALUES)] if name == "c/edge" else i * 0.5 + j
            events.append(_point(name, value, i, 1000.0 + i))
            expected[name].append(value)
    db.write(events)
    got = db.metric_values("run")
    assert list(got) == ["b/loss", "a/acc", "c/edge"]
    for name in names:
        kind, values = got[name]
        assert kind == "scalar"
        assert len(values) == 257
        assert all(_same(v, e) for v, e in zip(values, expected[name], strict=True)), name
    points = db.metric_points("run", "c/edge")
    assert [p.step for p in points] == list(range(257))
    assert [p.time for p in points] == [1000.0 + i for i in range(257)]
    db.close()


def test_a_second_kind_in_the_same_batch_is_counted_not_written(store: Path) -> None:
    """A name that already holds scalars refuses a list, even in the batch that created it."""
    db = SQLiteStore(store)
    db.write(
        [
            _point("loss", 1.0, 0, 1.0),
            ev.MetricLogged("run", "loss", "list", (1.0, 2.0), None, 2.0),
            _point("loss", 2.0, 1, 3.0),
        ]
    )
    assert db.metric_values("run") == {"loss": ("scalar", [1.0, 2.0])}
    assert db.get_drops("run") == {"metric_kind_conflict": 1}
    db.close()


def test_points_of_later_batches_follow_earlier_ones(store: Path) -> None:
    """Batches of 150 points, metrics alternating within each: every metric reads in order."""
    db = SQLiteStore(store)
    step = 0
    for _ in range(4):
        batch = []
        for _ in range(75):
            batch += [_point("x", float(step), step, 1.0), _point("y", step, step, 1.0)]
            step += 1
        db.write(batch)
    got = db.metric_values("run")
    assert got["x"] == ("scalar", [float(s) for s in range(300)])
    assert got["y"] == ("scalar", list(range(300)))
    db.close()
