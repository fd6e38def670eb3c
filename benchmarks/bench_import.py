"""Time of ``import logbridge`` over a bare interpreter start, in fresh subprocesses.

The baseline is ``python -c pass``; the figure is ``python -c "import logbridge"``, the two run
alternately ``--repeat`` times each, compared by their medians; then the cost of the first
use of the Run API and of the handler, whose modules load on first use. It then lists, from
``python -X importtime``, the modules that ``import logbridge`` loads which a bare interpreter
does not, heaviest first, and flags the ones known to be heavy (json, sqlite3, uuid, ...): those
should load only when they are used.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

HEAVY = (
    "json",
    "sqlite3",
    "uuid",
    "platform",
    "subprocess",
    "socket",
    "logging",
    "pathlib",
    "dataclasses",
    "datetime",
    "shutil",
    "tempfile",
    "threading",
    "typing",
    "re",
)
"""Modules worth loading lazily; ``python -c pass`` loads none of them."""

FIRST_USE = (
    "from logbridge import start_run",
    "from logbridge import RunHandler",
)
"""What a script pays once it uses the Run API or the handler (their modules load then)."""


def start_time(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=_env())
    return time.perf_counter() - start


def _env() -> dict[str, str]:
    # No user site-packages noise, and no bytecode writes between rounds.
    return {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1"}


def import_times() -> list[tuple[int, int, str]]:
    """Return (self µs, cumulative µs, module) of each module ``import logbridge`` adds."""
    bare = _imported("pass")
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import logbridge"],
        check=True,
        capture_output=True,
        text=True,
        env=_env(),
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        own, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        if name.strip() not in bare:
            rows.append((int(own), int(cumulative), name))
    return rows


def _imported(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sys.modules))"],
        check=True,
        capture_output=True,
        text=True,
        env=_env(),
    )
    return set(done.stdout.split())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21, help="interpreter starts per figure")
    parser.add_argument("--top", type=int, default=15, help="modules to list")
    args = parser.parse_args(argv)
    start_time("import logbridge")  # warm the file cache and the bytecode
    bare, loaded = [], []
    for _ in range(args.repeat):
        bare.append(start_time("pass"))
        loaded.append(start_time("import logbridge"))
    base, real = statistics.median(bare), statistics.median(loaded)
    print(f"import logbridge, median of {args.repeat} fresh interpreters each")
    print(f"  baseline: python -c pass            {base * 1e3:7.1f} ms")
    print(f"  python -c 'import logbridge'        {real * 1e3:7.1f} ms  ({real / base:.2f}x)")
    print(f"  import logbridge costs              {(real - base) * 1e3:7.1f} ms  (target < 30 ms)")
    # The public names load their modules on first use: show what that first use costs too.
    for code in FIRST_USE:
        used = statistics.median(start_time(code) for _ in range(args.repeat))
        print(f"  {code:<36}{used * 1e3:7.1f} ms  (+{(used - base) * 1e3:.1f} ms)")

    rows = import_times()
    added = {name.strip() for _, _, name in rows}
    total = sum(own for own, _, _ in rows)
    print(f"\n-X importtime: {len(rows)} modules added, {total / 1e3:.1f} ms of their own time")
    heavy = [name for name in HEAVY if name in added]
    print(f"  heavy modules loaded at import: {', '.join(heavy) if heavy else 'none'}")
    print(f"  top {args.top} by cumulative time (us, self | cumulative | module):")
    for own, cumulative, name in sorted(rows, key=lambda row: -row[1])[: args.top]:
        print(f"    {own:>7} | {cumulative:>7} | {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
