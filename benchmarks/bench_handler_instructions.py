"""Instructions per tagged ``log.info(...)`` call with `logbridge.RunHandler`, counted by valgrind.

The wall and CPU times of bench_handler.py move by 10-20% with the load of a shared machine;
an instruction count does not: ``valgrind --tool=callgrind`` counts the same total for the
same program whatever else runs (threads are serialised, so it counts work, not overlap). Use it
to compare two versions of the code; the speed targets are still read off bench_handler.py.

It runs this file under callgrind in several modes, each a fresh interpreter, and takes
differences, so that start-up and set-up cancel out:

* ``baseline``: the call with a do-nothing handler, ``--records`` times, and 0 times;
* ``caller``: the call with RunHandler while the writer thread is held back (the caller's
  side only), ``--records`` times, and 0 times;
* ``python``: the same with the capture in Python (``LOGBRIDGE_PURE_PYTHON=1``), when the
  compiled one (``logbridge._speedups``) is built;
* ``pipeline``: the call with RunHandler ``--records`` times, then ``run.flush()``, every batch
  written by the recorder's thread (``LOGBRIDGE_WRITER_PROCESS_AFTER=never``): the whole work;
* ``training``: the same with a writer process from the first batch: what is left in the
  training process (valgrind does not follow the writer process).

It prints instructions per call for the baseline, the caller's side, the whole pipeline and the
training process's share of it, and their ratios to the baseline. With ``--structlog`` it also
counts bench_handler.py's structlog chain (``structlog``) and what
`logbridge.structlog.RunProcessor` adds to it in the caller's thread (``processor``, the writer
held back). Needs valgrind (Debian's package ``valgrind``).

    .venv/bin/python benchmarks/bench_handler_instructions.py [--records 20000]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MODES = ("baseline", "caller", "python", "pipeline", "training", "structlog", "processor")


def measured(mode: str, records: int) -> None:
    """Run ``records`` tagged calls in ``mode`` (inside valgrind), then leave at once."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_handler

    if mode == "baseline":
        log = bench_handler.logger_with(bench_handler.NoopHandler())
        bench_handler.tagged_calls(log, records)
        os._exit(0)
    import logbridge
    from logbridge import _state

    os.environ["LOGBRIDGE_QUEUE_SIZE"] = str(records + 1_000)
    os.environ["LOGBRIDGE_WRITER_PROCESS_AFTER"] = "0" if mode == "training" else "never"
    os.environ["LOGBRIDGE_HOME"] = tempfile.mkdtemp(prefix="bench-instructions-")
    run = logbridge.start_run(experiment="bench", name="instructions")
    if mode in ("structlog", "processor"):
        structlog_calls(run, records, processor=mode == "processor")
        os._exit(0)
    log = bench_handler.logger_with(logbridge.RunHandler())
    bench_handler.tagged_calls(log, 100, start=-100)  # start the writer, name the metrics
    run.flush()
    if mode in ("caller", "python"):
        recorder = _state.existing_recorder(run.store)
        assert recorder is not None
        recorder._write_lock.acquire()  # noqa: SLF001 - hold the writer back
    bench_handler.tagged_calls(log, records)
    if mode in ("pipeline", "training"):
        run.flush()
    logging.shutdown()
    os._exit(0)  # no exit drain: it is not what is measured


def structlog_calls(run: Any, records: int, *, processor: bool) -> None:
    """bench_handler.py's structlog chain, with or without RunProcessor, the writer held back."""
    import bench_handler
    import structlog

    from logbridge import _state
    from logbridge.structlog import RunProcessor

    processors = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
        *([RunProcessor()] if processor else []),
        structlog.processors.JSONRenderer(),
    ]
    with bench_handler.scratch_file() as path:
        bench_handler.structlog_calls(processors, path, 100)  # start the writer, name metrics
        run.flush()
        recorder = _state.existing_recorder(run.store)
        assert recorder is not None
        recorder._write_lock.acquire()  # noqa: SLF001 - hold the writer back
        bench_handler.structlog_calls(processors, path, records)


def count(mode: str, records: int) -> int:
    """Instructions valgrind counts for a fresh interpreter running ``mode``."""
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--run",
            mode,
            "--records",
            str(records),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "LOGBRIDGE_PURE_PYTHON": "1" if mode == "python" else "0"},
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"valgrind failed in mode {mode}:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000, help="tagged calls per run")
    parser.add_argument(
        "--structlog",
        action="store_true",
        help="also count what RunProcessor adds to a structlog chain in the caller's thread",
    )
    parser.add_argument("--run", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        measured(args.run, args.records)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)")
        return 1
    n = args.records
    base = (count("baseline", n) - count("baseline", 0)) / n
    empty = count("caller", 0)
    caller = (count("caller", n) - empty) / n
    pipeline = (count("pipeline", n) - empty) / n
    training = (count("training", n) - count("training", 0)) / n
    from logbridge import _handler

    print(f"{n:,} tagged calls, instructions per call (valgrind --tool=callgrind)")
    print(f"  baseline (do-nothing handler): {base:,.0f}")
    if _handler.COMPILED:
        python = (count("python", n) - count("python", 0)) / n
        print(f"  RunHandler, caller's side:     {caller:,.0f}  {caller / base:.2f}x")
        print(f"    with the capture in Python:  {python:,.0f}  {python / base:.2f}x")
    else:
        print(f"  RunHandler, caller's side:     {caller:,.0f}  {caller / base:.2f}x (in Python)")
    print(f"  RunHandler, whole pipeline:    {pipeline:,.0f}  {pipeline / base:.2f}x")
    print(f"  of which the training process: {training:,.0f}  {training / base:.2f}x")
    if args.structlog:
        chain = count("structlog", n) - count("structlog", 0)
        added = count("processor", n) - count("processor", 0) - chain
        print(f"  structlog chain (JSON):        {chain / n:,.0f}")
        print(f"  RunProcessor in it, caller:    +{added / n:,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
