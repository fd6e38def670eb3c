"""A hyperparameter sweep recorded by logbridge: Ridge regression over alphas, diabetes data.

The classic azureml-core tracking example, moved to logbridge: one parent run for the sweep,
a child run per alpha with its metrics and model file, a table and a chart of the results.
The training code talks to `logging` only; the metrics ride on tagged log records.

Run it with ``./scripts/demo`` (or ``python examples/sweep.py``); the runs land in
``./logbridge-runs`` (or ``$LOGBRIDGE_HOME``).
"""

from __future__ import annotations

import logging
import pickle
import sys
import tempfile
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split

import logbridge

log = logging.getLogger("sweep")


def train(alpha: float, data: tuple[np.ndarray, ...]) -> tuple[Ridge, float]:
    """Fit one Ridge model and return it with its test RMSE."""
    x_train, x_test, y_train, y_test = data
    model = Ridge(alpha=alpha).fit(x_train, y_train)
    rmse = float(np.sqrt(mean_squared_error(y_test, model.predict(x_test))))
    return model, rmse


def main() -> int:
    """Run the sweep and print where the runs are."""
    sweep = logbridge.basicConfig(experiment="diabetes-ridge", console_level="INFO")
    sweep.tag("model", "Ridge")
    x, y = load_diabetes(return_X_y=True)
    data = tuple(train_test_split(x, y, test_size=0.2, random_state=0))
    log.info("loaded the diabetes data: %d rows, %d features", *x.shape)

    results: dict[str, list[float]] = {"alpha": [], "rmse": []}
    with tempfile.TemporaryDirectory() as tmp:
        for alpha in np.arange(0.0, 1.0, 0.05):
            with sweep.child_run(f"alpha={alpha:.2f}") as trial:
                model, rmse = train(float(alpha), data)
                trial.log("alpha", float(alpha))
                trial.log("rmse", rmse)
                model_file = Path(tmp) / f"model_alpha_{alpha:.2f}.pkl"
                model_file.write_bytes(pickle.dumps(model))
                trial.upload_file(f"models/{model_file.name}", model_file)
            results["alpha"].append(float(alpha))
            results["rmse"].append(rmse)
            log.info(
                "alpha %.2f: rmse %.3f",
                alpha,
                rmse,
                extra={"metrics": {"rmse": rmse, "alpha": float(alpha)}},
            )

    best = int(np.argmin(results["rmse"]))
    sweep.log_table("results", results)
    figure, axes = plt.subplots()
    axes.plot(results["alpha"], results["rmse"], marker="o")
    axes.set(xlabel="alpha", ylabel="test RMSE", title="Ridge regression on diabetes")
    sweep.log_image("rmse_by_alpha", plot=figure)
    log.info(
        "best alpha %.2f with rmse %.3f",
        results["alpha"][best],
        results["rmse"][best],
        extra={"tags": {"best_alpha": f"{results['alpha'][best]:.2f}"}},
    )
    sweep.complete()

    print()
    print(f"Sweep run {sweep.id}: {sweep.get_status()}, {len(sweep.get_children())} child runs")
    print(f"Best alpha {results['alpha'][best]:.2f}, test RMSE {results['rmse'][best]:.3f}")
    print(f"Runs are in {sweep.store}")
    print("Look at them with:  .venv/bin/logbridge runs")
    print(f"                    .venv/bin/logbridge show {sweep.id[:8]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
