"""An existing training script that logs with the standard library, tracked by one handler.

The only logbridge line is the handler in ``logging.basicConfig``: every record becomes part
of the run's log, and records tagged with ``extra={"metrics": ..., "step": ...}`` also become
metrics. Run it, then look at the run::

    python examples/stdlib_one_handler.py
    logbridge runs
    logbridge metrics <run id>
"""

from __future__ import annotations

import logging
import random

import logbridge

log = logging.getLogger("train")


def make_data(n: int, seed: int) -> list[tuple[float, float]]:
    """Noisy points of y = 3x + 1."""
    rng = random.Random(seed)
    points = []
    for _ in range(n):
        x = rng.uniform(-1, 1)
        points.append((x, 3 * x + 1 + rng.gauss(0, 0.1)))
    return points


def train(epochs: int = 20, lr: float = 0.5) -> tuple[float, float]:
    """Fit y = w x + b by gradient descent, logging the loss of each epoch."""
    data = make_data(200, seed=0)
    w, b = 0.0, 0.0
    log.info("training on %d points for %d epochs (lr=%s)", len(data), epochs, lr)
    for epoch in range(epochs):
        grad_w = sum(2 * (w * x + b - y) * x for x, y in data) / len(data)
        grad_b = sum(2 * (w * x + b - y) for x, y in data) / len(data)
        w, b = w - lr * grad_w, b - lr * grad_b
        loss = sum((w * x + b - y) ** 2 for x, y in data) / len(data)
        log.debug("epoch %d gradients: %.4f %.4f", epoch, grad_w, grad_b)
        log.info(
            "epoch %d loss %.4f", epoch, loss, extra={"metrics": {"loss": loss}, "step": epoch}
        )
    log.info("done: w=%.2f b=%.2f", w, b, extra={"metrics": {"w": w, "b": b}})
    return w, b


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.DEBUG,
        format="%(levelname)s %(name)s: %(message)s",
        handlers=[logging.StreamHandler(), logbridge.RunHandler(experiment="linear")],
    )
    train()
