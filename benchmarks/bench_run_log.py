"""Cost of ``run.log(name, value, step=i)`` against a do-nothing ``log`` of the same signature.

For each number of metric names it logs ``--points`` points in one loop, then measures

* end to end: wall time from the first call until ``run.flush()`` returns (points/s);
* caller: the logging thread's CPU time (``time.thread_time``) spent in the loop, per point;
* process: the whole process's CPU (``time.process_time``, the writer thread included) until
  the flush returns, per point;

and the same figures for a baseline loop whose ``log`` method does nothing, in the same process.
Ratios are logbridge / baseline; "own" is logbridge minus baseline, the cost logbridge adds.

It also measures the memory each queued event holds while the writer cannot write (another
connection holds the store's write lock) with ``tracemalloc``. Every figure is the median of
``--repeat`` rounds; every round uses a fresh temporary store, removed afterwards.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import logbridge
from logbridge.testing import temporary_store

LogCall = Callable[..., None]


class NoopRun:
    """The baseline: a run whose ``log`` takes the same arguments and does nothing."""

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        """Do nothing."""

    def flush(self) -> bool:
        """Do nothing."""
        return True


def metric_names(count: int) -> list[str]:
    return ["loss"] if count == 1 else [f"layer{i}/grad_norm" for i in range(count)]


def drive(run: Any, names: Sequence[str], points: int) -> dict[str, float]:
    """Log ``points`` points cycling over ``names``; return the per-point costs in seconds."""
    log: LogCall = run.log
    count = len(names)
    wall0 = time.perf_counter()
    cpu0 = time.process_time()
    thread0 = time.thread_time()
    for i in range(points):
        log(names[i % count], i * 0.5, step=i)
    thread1 = time.thread_time()
    run.flush()
    cpu1 = time.process_time()
    wall1 = time.perf_counter()
    return {
        "wall": (wall1 - wall0) / points,
        "caller": (thread1 - thread0) / points,
        "process": (cpu1 - cpu0) / points,
    }


def stored_points(store: Path) -> int:
    with sqlite3.connect(store / "store.db") as conn:
        return int(conn.execute("SELECT count(*) FROM points").fetchone()[0])


def one_round(names: Sequence[str], points: int) -> tuple[dict[str, float], dict[str, float]]:
    base = drive(NoopRun(), names, points)
    with temporary_store() as store:
        run = logbridge.start_run(experiment="bench", name="run-log")
        real = drive(run, names, points)
        run.complete()
        stored = stored_points(store)
    if stored != points:
        raise SystemExit(f"lost points: logged {points}, stored {stored}")
    return base, real


def measure(names: Sequence[str], points: int, repeat: int) -> None:
    rounds = [one_round(names, points) for _ in range(repeat)]
    base = {k: statistics.median(r[0][k] for r in rounds) for k in rounds[0][0]}
    real = {k: statistics.median(r[1][k] for r in rounds) for k in rounds[0][1]}
    print(f"\n{points:,} points over {len(names):,} metric name(s), median of {repeat} round(s)")
    print(f"  {'per point':<28}{'baseline':>12}{'logbridge':>12}{'own':>12}{'ratio':>9}")
    labels = {
        "wall": "end to end (wall, to flush)",
        "caller": "caller thread CPU",
        "process": "process CPU (to flush)",
    }
    for key, label in labels.items():
        b, r = base[key] * 1e6, real[key] * 1e6
        print(f"  {label:<28}{b:>9.3f} us{r:>9.3f} us{r - b:>9.3f} us{r / b:>8.1f}x")
    print(f"  end to end: {1 / real['wall']:,.0f} points/s (target >= 200,000)")
    print(f"  caller thread alone: {1 / real['caller']:,.0f} calls/s")


def queued_memory(points: int) -> None:
    """Bytes each queued point holds while the writer is stuck behind another writer."""
    with temporary_store() as store:
        run = logbridge.start_run(experiment="bench", name="memory")
        run.log("loss", 0.0, step=0)
        run.flush()
        blocker = sqlite3.connect(store / "store.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        values = [i * 0.5 for i in range(points)]  # allocated before tracing starts
        try:
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            for i, value in enumerate(values):
                run.log("loss", value, step=i + 1000)
            held = tracemalloc.get_traced_memory()[0] - before
            tracemalloc.stop()
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        run.complete()
        stored = stored_points(store)
    if stored != points + 1:
        raise SystemExit(f"lost points: logged {points + 1}, stored {stored}")
    print(f"\nmemory while the writer is blocked ({points:,} queued points, tracemalloc)")
    print(f"  {held / points:,.0f} bytes per queued point ({held / 2**20:.1f} MiB in all)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000, help="points per round")
    parser.add_argument(
        "--names", type=int, nargs="+", default=[1, 10_000], help="metric name counts to run"
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds per figure")
    parser.add_argument(
        "--memory-points", type=int, default=50_000, help="points queued for the memory figure"
    )
    args = parser.parse_args(argv)
    print(f"logbridge {logbridge.__version__}, run.log(name, value, step=i)")
    for count in args.names:
        measure(metric_names(count), args.points, args.repeat)
    # Stay below the default queue bound (100,000): a full queue would wait for the writer.
    queued_memory(min(args.memory_points, 90_000))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
