"""Pool workers logging into the parent's run, under fork, spawn and forkserver.

Forked workers inherit the parent's `RunHandler`; spawned ones get ``LOGBRIDGE_RUN_ID`` from
the parent and configure their own handler in the pool's initializer. Either way each record
lands once in the parent's run, marked with the pid of the worker that logged it.

    python examples/multiprocessing_pool.py spawn
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys

import logbridge

log = logging.getLogger("pool")


def configure_logging() -> None:
    """The script's logging setup, run in the parent and in each spawned worker."""
    logging.basicConfig(level=logging.INFO, handlers=[logbridge.RunHandler()], force=True)


def evaluate(alpha: float) -> float:
    """Score one hyperparameter value (a stand-in for real work), logging the result."""
    score = 1 - (alpha - 0.3) ** 2
    log.info(
        "alpha %.1f scored %.3f in process %d",
        alpha,
        score,
        os.getpid(),
        extra={"metrics": {"score": score}},
    )
    return score


def main(method: str) -> None:
    """Evaluate ten values in a pool of two workers."""
    configure_logging()
    run = logbridge.start_run(experiment="pool")
    alphas = [i / 10 for i in range(10)]
    context = multiprocessing.get_context(method)
    initializer = None if method == "fork" else configure_logging
    with context.Pool(2, initializer=initializer) as pool:
        scores = pool.map(evaluate, alphas)
    best = alphas[scores.index(max(scores))]
    log.info("best alpha %.1f", best, extra={"metrics": {"best_alpha": best}})
    print(f"run {run.id}: best alpha {best}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "spawn")
