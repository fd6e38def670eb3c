"""The names azureml-core's tracking examples use, recording into a local logbridge store.

Change ``from azureml.core import Workspace, Experiment, Run, ScriptRunConfig, Environment``
(and ``from azureml.widgets import RunDetails``) to ``from logbridge.azureml import ...``:
runs go to the local store and scripts run on this machine. Nothing here talks to Azure or
needs an Azure package. docs/migrating-from-azureml.md maps every call and says what differs.
"""

from __future__ import annotations

import html
import importlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from logbridge import _format, _settings
from logbridge._errors import LogbridgeError
from logbridge._run import Run, list_runs, start_run
from logbridge._store import FINAL_STATUSES
from logbridge._submit import SubmittedRun, submit

__all__ = [
    "Environment",
    "Experiment",
    "Run",
    "RunConfiguration",
    "RunDetails",
    "ScriptRunConfig",
    "Workspace",
]

CONFIG_FILE: Final = "config.json"
_REFRESH: Final = 2.0


class Workspace:
    """Where runs are kept: here, a local store folder.

    ``subscription_id``, ``resource_group`` and ``workspace_name`` are kept for display only.
    """

    def __init__(
        self,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        workspace_name: str | None = None,
        *,
        store: str | os.PathLike[str] | None = None,
        **_ignored: Any,
    ) -> None:
        """Name the workspace; ``store`` is the store folder (default as `start_run`)."""
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.name = workspace_name or "local"
        self.store = _settings.store_path(store)

    @classmethod
    def from_config(
        cls, path: str | os.PathLike[str] | None = None, _file_name: str | None = None, **_: Any
    ) -> Workspace:
        """Read a ``config.json`` as azureml does, or use the default store if there is none.

        The file is looked for at ``path`` (a file or a folder), else in the working folder
        and its parents, also inside ``.azureml/``. Besides azureml's keys it may hold
        ``"store"``: the store folder, relative to the file.
        """
        found = _find_config(Path(path) if path is not None else None, _file_name or CONFIG_FILE)
        if found is None:
            return cls()
        try:
            config = json.loads(found.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise LogbridgeError(
                f"cannot read the workspace configuration {found}: {err}"
            ) from None
        if not isinstance(config, dict):
            raise LogbridgeError(f"the workspace configuration {found} is not a JSON object")
        store = config.get("store")
        return cls(
            config.get("subscription_id"),
            config.get("resource_group"),
            config.get("workspace_name"),
            store=None if store is None else found.parent / str(store),
        )

    @property
    def experiments(self) -> dict[str, Experiment]:
        """The workspace's experiments by name."""
        names = sorted({run.experiment for run in list_runs(store=self.store)})
        return {name: Experiment(self, name) for name in names}

    def get_details(self) -> dict[str, Any]:
        """Return the workspace's name and store folder."""
        return {"name": self.name, "store": str(self.store)}

    def __repr__(self) -> str:
        """Show the name and the store."""
        return f"Workspace(name={self.name!r}, store={str(self.store)!r})"


def _find_config(path: Path | None, file_name: str) -> Path | None:
    if path is not None:
        candidates = [path] if path.is_file() else [path / file_name, path / ".azureml" / file_name]
    else:
        here = Path.cwd()
        candidates = [
            folder / sub / file_name for folder in (here, *here.parents) for sub in ("", ".azureml")
        ]
    return next((c for c in candidates if c.is_file()), None)


class Experiment:
    """A named group of runs of a workspace."""

    def __init__(self, workspace: Workspace, name: str, **_ignored: Any) -> None:
        """Name an experiment of ``workspace``."""
        self.workspace = workspace
        self.name = name

    def __repr__(self) -> str:
        """Show the name."""
        return f"Experiment(name={self.name!r}, workspace={self.workspace.name!r})"

    def start_logging(
        self,
        *args: Any,  # noqa: ARG002 - azureml's snapshot_directory and outputs
        display_name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        **_ignored: Any,
    ) -> Run:
        """Start an interactive run (a notebook's): log into it, then ``run.complete()``.

        azureml's ``snapshot_directory`` and ``outputs`` are accepted and ignored.
        """
        return start_run(self.name, display_name, tags, store=self.workspace.store)

    def submit(
        self, config: ScriptRunConfig, tags: Mapping[str, Any] | None = None, **_ignored: Any
    ) -> SubmittedRun:
        """Run a `ScriptRunConfig` on this machine in the background; return its run."""
        if not isinstance(config, ScriptRunConfig):
            raise LogbridgeError(
                f"Experiment.submit takes a ScriptRunConfig here, not {type(config).__name__}"
            )
        return config._submit(self, tags)  # noqa: SLF001

    def get_runs(self, **_ignored: Any) -> Iterator[Run]:
        """Yield the experiment's runs, newest first."""
        yield from list_runs(self.name, store=self.workspace.store)


class PythonSection:
    """``Environment.python``: which interpreter runs the script."""

    def __init__(self) -> None:
        """Default: the interpreter running logbridge."""
        self.user_managed_dependencies = False
        self.interpreter_path = "python"
        self.conda_dependencies: Any = None


class Environment:
    """The Python a script runs with: here, an interpreter on this machine.

    With ``python.user_managed_dependencies = True`` and ``python.interpreter_path`` set, that
    interpreter runs the script (it needs logbridge installed); otherwise the interpreter
    running logbridge does. No environment is built: conda and Docker settings are ignored.
    """

    def __init__(self, name: str) -> None:
        """Name the environment."""
        self.name = name
        self.python = PythonSection()
        self.environment_variables: dict[str, str] = {}
        self.docker: Any = None

    def interpreter(self) -> str | None:
        """Return the interpreter the script runs with, or None for logbridge's own."""
        python = self.python
        if python.user_managed_dependencies and python.interpreter_path not in ("", "python"):
            return str(python.interpreter_path)
        return None

    def register(self, workspace: Workspace) -> Environment:  # noqa: ARG002
        """Return the environment (there is nothing to register locally)."""
        return self

    def __repr__(self) -> str:
        """Show the name."""
        return f"Environment(name={self.name!r})"


class RunConfiguration:
    """``ScriptRunConfig.run_config``: the environment (and an ignored compute target)."""

    def __init__(self) -> None:
        """A configuration with a default environment."""
        self.environment = Environment("local")
        self.target = "local"


class ScriptRunConfig:
    """A script, its folder and its arguments, for `Experiment.submit`."""

    def __init__(  # noqa: PLR0917 - azureml's positional signature
        self,
        source_directory: str | os.PathLike[str] = ".",
        script: str | None = None,
        arguments: Sequence[Any] | None = None,
        run_config: RunConfiguration | None = None,
        compute_target: Any = None,
        environment: Environment | None = None,
        **_ignored: Any,
    ) -> None:
        """Describe the script run: ``script`` is relative to ``source_directory``."""
        if script is None:
            raise LogbridgeError("ScriptRunConfig needs script= (commands are not supported)")
        self.source_directory = str(source_directory)
        self.script = script
        self.arguments = list(arguments or [])
        self.run_config = run_config or RunConfiguration()
        if environment is not None:
            self.run_config.environment = environment
        if compute_target is not None:
            self.run_config.target = compute_target

    def _submit(self, experiment: Experiment, tags: Mapping[str, Any] | None) -> SubmittedRun:
        environment = self.run_config.environment
        return submit(
            self.script,
            self.arguments,
            experiment=experiment.name,
            source_directory=self.source_directory,
            tags=tags,
            store=experiment.workspace.store,
            python=environment.interpreter(),
            environment=dict(environment.environment_variables),
        )


class RunDetails:
    """A run's progress: a display that refreshes in a notebook, a text summary elsewhere."""

    def __init__(self, run_instance: Run) -> None:
        """Show ``run_instance``."""
        self.run = run_instance

    def show(self) -> None:
        """Display the run: refreshed every 2 s until it ends in a notebook, printed once here."""
        display = _notebook_display()
        if display is None:
            print(summary(self.run), flush=True)  # noqa: T201 - the text display
            return
        handle = display(_Html(render_html(self.run)), display_id=True)
        if self.run.get_status() not in FINAL_STATUSES:
            threading.Thread(
                target=_refresh, args=(self.run, handle), name="logbridge-rundetails", daemon=True
            ).start()

    def get_widget_data(self) -> dict[str, Any]:
        """Return what the display shows: the run's details and metrics."""
        details = self.run.get_details()
        details["metrics"] = self.run.get_metrics()
        return details


class _Html:
    """An object IPython displays as HTML."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_html_(self) -> str:
        return self.text


def _notebook_display() -> Any:
    """Return IPython's ``display`` inside a notebook kernel, else None."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    shell = ipython.get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return None
    return importlib.import_module("IPython.display").display


def _refresh(run: Run, handle: Any) -> None:
    while True:
        time.sleep(_REFRESH)
        try:
            done = run.get_status() in FINAL_STATUSES
            handle.update(_Html(render_html(run)))
        except Exception:  # the display goes stale; the run is not affected
            return
        if done:
            return


def _last_values(run: Run) -> list[tuple[str, str]]:
    rows = []
    for name, value in run.get_metrics().items():
        shown = value[-1] if isinstance(value, list) and value else value
        rows.append((name, _format.value(shown)))
    return rows


def summary(run: Run) -> str:
    """Return a run's status, times, metrics (latest values) and viewer address as text."""
    details = run.get_details()
    lines = [
        f"Run {details['runId']} ({details['name']}) of experiment {details['experiment']}",
        f"Status: {details['status']}",
    ]
    error = details.get("error")
    if error:
        lines.append(f"Error: {error.get('type', 'Error')}: {error.get('message', '')}")
    metrics = _last_values(run)
    if metrics:
        lines.append(_format.table(["METRIC", "LATEST"], metrics))
    lines.append(f"Viewer: {run.get_portal_url()} (logbridge ui)")
    return "\n".join(lines)


def render_html(run: Run) -> str:
    """Return a run's status and latest metric values as an HTML fragment (all escaped)."""
    details = run.get_details()
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{html.escape(value)}</td></tr>"
        for name, value in _last_values(run)
    )
    url = html.escape(run.get_portal_url(), quote=True)
    return (
        f"<div><b>{html.escape(details['name'])}</b> ({html.escape(details['experiment'])}): "
        f'{html.escape(details["status"])} &middot; <a href="{url}" target="_blank">'
        f"open in logbridge ui</a><table><tr><th>metric</th><th>latest</th></tr>{rows}"
        "</table></div>"
    )
