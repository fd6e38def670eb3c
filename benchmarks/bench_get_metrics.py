"""Time of ``run.get_metrics()`` on a run holding ``--points`` points of one metric.

The baseline is the least any reader pays: a fresh ``sqlite3`` connection fetching the same
rows (``SELECT type, value FROM points``) and nothing else, measured in the same process.
It also prints SQLite's plan for the points query, which must read the ``points_by_metric``
index in order (no ``USE TEMP B-TREE FOR ORDER BY``). Figures are medians of ``--repeat``
reads; the temporary store is removed afterwards.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import logbridge
from logbridge.testing import temporary_store

POINTS_SQL = "SELECT type, value FROM points WHERE metric_id = ? ORDER BY rowid"


def timed(read: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = read()
        times.append(time.perf_counter() - start)
        del result
    return statistics.median(times), read()


def raw_fetch(store: Path) -> list[Any]:
    conn = sqlite3.connect(store / "store.db")
    try:
        (metric_id,) = conn.execute("SELECT id FROM metrics WHERE name = 'loss'").fetchone()
        return conn.execute(POINTS_SQL, (metric_id,)).fetchall()
    finally:
        conn.close()


def query_plan(store: Path) -> list[str]:
    with sqlite3.connect(store / "store.db") as conn:
        rows = conn.execute(f"EXPLAIN QUERY PLAN {POINTS_SQL}", (1,)).fetchall()
    return [str(row[-1]) for row in rows]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000, help="points of the metric")
    parser.add_argument("--repeat", type=int, default=5, help="reads per figure")
    args = parser.parse_args(argv)
    points = args.points
    with temporary_store() as store:
        run = logbridge.start_run(experiment="bench", name="get-metrics")
        log = run.log
        start = time.perf_counter()
        for i in range(points):
            log("loss", i * 0.5, step=i)
        run.flush()
        fill = time.perf_counter() - start
        print(f"logbridge {logbridge.__version__}, run.get_metrics() of {points:,} points")
        print(f"  filled in {fill:.2f} s ({points / fill:,.0f} points/s)")

        base, rows = timed(lambda: raw_fetch(store), args.repeat)
        real, metrics = timed(run.get_metrics, args.repeat)
        expected = [value for _, value in rows] if points > 1 else rows[0][1]
        if metrics != {"loss": expected}:
            raise SystemExit("get_metrics() does not return the logged values")
        del rows, metrics

        print(f"  {'median of ' + str(args.repeat):<34}{'seconds':>9}{'per point':>12}{'ratio':>8}")
        print(f"  {'baseline: raw sqlite3 fetchall':<34}{base:>9.3f}{base / points * 1e9:>9.0f} ns")
        print(
            f"  {'run.get_metrics()':<34}{real:>9.3f}{real / points * 1e9:>9.0f} ns"
            f"{real / base:>7.2f}x"
        )
        print(f"  target: under 1 s -> {'met' if real < 1.0 else 'NOT met'}")
        print("  query plan: " + "; ".join(query_plan(store)))
        run.complete()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
