"""Cost of the OpenTelemetry export for the training's logging calls, with a dead collector.

Logs N records through a RunHandler into a run without export, then into a run exporting to
a port nobody listens on, in the same process, and prints the ratio of the two timings
(the logging loop alone, and the loop plus the run's flush). Goal: <= 1.05. The run's flush
waits for the store only, and the dead collector fails fast (connection refused opens the
export's circuit breaker), so neither should wait on the network.

    .venv/bin/python benchmarks/bench_otel.py [N]
"""

import logging
import os
import socket
import sys
import tempfile
import time

import logbridge
from logbridge import _state
from logbridge.testing import temporary_store


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _one(n: int, *, export: bool) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as folder, temporary_store(folder):
        if export:
            from logbridge import otel

            otel.enable(endpoint=f"http://127.0.0.1:{_dead_port()}")
        run = logbridge.start_run(experiment="bench")
        log = logging.getLogger("bench")
        log.propagate = False
        log.setLevel(logging.INFO)
        handler = logbridge.RunHandler(run=run)
        log.addHandler(handler)
        started = time.perf_counter()
        for i in range(n):
            log.info("step %d", i, extra={"metrics": {"loss": 1.0 / (i + 1)}, "step": i})
        loop = time.perf_counter() - started
        run.flush(60)
        total = time.perf_counter() - started
        log.removeHandler(handler)
        os.environ["LOGBRIDGE_OTEL_EXIT_TIMEOUT"] = "1"
        _state.reset()
        return loop, total


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    _one(2_000, export=False)
    rounds = [(_one(n, export=False), _one(n, export=True)) for _ in range(3)]
    base_loop = min(r[0][0] for r in rounds)
    otel_loop = min(r[1][0] for r in rounds)
    base_total = min(r[0][1] for r in rounds)
    otel_total = min(r[1][1] for r in rounds)
    print(f"{n} tagged records, best of 3, dead collector")
    print(
        f"logging loop: {base_loop:.3f} s without export, {otel_loop:.3f} s with: "
        f"ratio {otel_loop / base_loop:.3f}"
    )
    print(
        f"loop + flush: {base_total:.3f} s without export, {otel_total:.3f} s with: "
        f"ratio {otel_total / base_total:.3f}"
    )


if __name__ == "__main__":
    main()
