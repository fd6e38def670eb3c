"""What a run records about the process and the code it runs in."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from logbridge import _liveness

_GIT_TIMEOUT = 3.0
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK")


def capture() -> dict[str, Any]:
    """Return the command line, working directory, Python, host, pid, git state and ranks."""
    cwd = str(Path.cwd())
    env: dict[str, Any] = {
        "command": [sys.executable, *sys.argv],
        "cwd": cwd,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": _liveness.host(),
        "pid": os.getpid(),
    }
    ranks = {name.lower(): os.environ[name] for name in _RANK_VARIABLES if name in os.environ}
    if ranks:
        env["rank"] = ranks
    git = _git(cwd)
    if git:
        env["git"] = git
    return env


def _git(cwd: str) -> dict[str, Any] | None:
    if not any((parent / ".git").exists() for parent in (Path(cwd), *Path(cwd).parents)):
        return None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT,
            check=False,
        )
        if commit.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    info: dict[str, Any] = {"commit": commit.stdout.strip()}
    if status.returncode == 0:
        info["dirty"] = bool(status.stdout.strip())
    return info


def script_name() -> str:
    """Return a name for the running program: the script's stem, or ``python``."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if not argv0 or argv0 == "-c":
        return "python"
    if "ipykernel" in argv0:
        return "notebook"
    stem = Path(argv0).stem
    return "python" if stem in ("", "__main__") else stem
