"""Largest-Triangle-Three-Buckets: fewer points, the same shape of line.

LTTB (Sveinn Steinarsson, 2013) keeps the first and last point and, from each of
``threshold - 2`` equal buckets in between, the point that makes the largest triangle with
the point kept before it and the average of the next bucket: peaks and troughs survive,
flat stretches thin out. For a million points the store first keeps each x bucket's lowest
and highest value (`SQLiteStore.metric_series` with ``buckets``), and LTTB picks from those
(the MinMaxLTTB scheme), so no step ever touches every point in Python.
"""

from __future__ import annotations

from collections.abc import Sequence

Pair = tuple[float, float]


def lttb(points: Sequence[Pair], threshold: int) -> list[Pair]:
    """Return at most ``threshold`` of ``points`` (sorted by x) that keep the line's shape.

    Args:
        points: (x, y) pairs in ascending x.
        threshold: how many points to keep; 3 or more (below that, every point is kept).

    Returns:
        A new list of the chosen points in order, always with the first and the last.
    """
    return [points[i] for i in lttb_indices(points, threshold)]


def lttb_indices(points: Sequence[Pair], threshold: int) -> list[int]:
    """Return the positions in ``points`` that `lttb` keeps, ascending."""
    n = len(points)
    if threshold < 3 or n <= threshold:
        return list(range(n))
    kept = [0]
    every = (n - 2) / (threshold - 2)
    a = 0
    for i in range(threshold - 2):
        start = int(i * every) + 1
        end = int((i + 1) * every) + 1
        nxt = points[end : min(int((i + 2) * every) + 1, n)] or points[n - 1 :]
        avg_x = sum(p[0] for p in nxt) / len(nxt)
        avg_y = sum(p[1] for p in nxt) / len(nxt)
        ax, ay = points[a]
        best = start
        best_area = -1.0
        for j in range(start, end):
            px, py = points[j]
            area = abs((ax - avg_x) * (py - ay) - (ax - px) * (avg_y - ay))
            if area > best_area:
                best_area = area
                best = j
        kept.append(best)
        a = best
    kept.append(n - 1)
    return kept
