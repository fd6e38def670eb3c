"""The run viewer: a local, read-only web application for experiments, runs and their charts.

``logbridge ui`` starts it; `create_app` gives the Flask application for embedding or tests and
`serve` runs it. Flask is imported only when one of them is called (the ``ui`` extra:
``pip install 'logbridge[ui]'``), so ``logbridge.ui._notebook`` works without it.
"""

from __future__ import annotations

import importlib
import ipaddress
import os
import sys
from typing import TYPE_CHECKING, Any, Final

from logbridge import _settings
from logbridge._errors import LogbridgeError, MissingExtraError
from logbridge._store import SQLiteStore

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "create_app", "is_loopback", "serve"]

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 5055


def _flask_app_module() -> Any:
    try:
        return importlib.import_module("logbridge.ui._app")
    except ImportError as err:
        if err.name not in ("flask", "werkzeug", "jinja2", "markupsafe"):
            raise
        raise MissingExtraError(
            "the run viewer needs Flask, which is not installed: pip install 'logbridge[ui]'"
        ) from None


def create_app(
    store: str | os.PathLike[str] | SQLiteStore | None = None,
    *,
    allowed_hosts: tuple[str, ...] = (),
) -> Flask:
    """Return the viewer's Flask application, reading the store (default: the usual one).

    Args:
        store: a store folder or an open `SQLiteStore`; default ``$LOGBRIDGE_HOME``, else
            ``./logbridge-runs``.
        allowed_hosts: host names the ``Host`` header may carry besides ``localhost`` and
            IP addresses (requests naming any other host are refused: DNS rebinding).

    Raises:
        MissingExtraError: Flask is not installed.
    """
    if not isinstance(store, SQLiteStore):
        store = SQLiteStore(_settings.store_path(store), create=False)
    app: Flask = _flask_app_module().build(store, allowed_hosts=allowed_hosts)
    return app


def is_loopback(host: str) -> bool:
    """Return whether binding ``host`` keeps the viewer on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    store: str | os.PathLike[str] | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    allow_remote: bool = False,
) -> None:
    """Serve the viewer until interrupted.

    Args:
        store: the store folder (see `create_app`).
        host: the address to listen on; loopback unless ``allow_remote``.
        port: the port; 0 picks a free one.
        allow_remote: allow listening on an address other machines can reach (the viewer has
            no login: anyone who can reach it reads every run).

    Raises:
        LogbridgeError: ``host`` is not a loopback address and ``allow_remote`` is false.
        MissingExtraError: Flask is not installed.
    """
    if not is_loopback(host) and not allow_remote:
        raise LogbridgeError(
            f"refusing to listen on {host}: the viewer has no login and shows every run to "
            "anyone who can reach it; pass --allow-remote to do it anyway"
        )
    app = create_app(store, allowed_hosts=(host,))
    from werkzeug.serving import make_server  # noqa: PLC0415

    server = make_server(host, port, app, threaded=True)
    if not is_loopback(host):
        _warn_remote(host, server.server_port)
    shown = f"[{host}]" if ":" in host else host
    print(f"logbridge viewer: http://{shown}:{server.server_port}/  (Ctrl-C to stop)", flush=True)  # noqa: T201
    print(f"store: {_settings.store_path(store)}", flush=True)  # noqa: T201
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _warn_remote(host: str, port: int) -> None:
    line = "!" * 72
    sys.stderr.write(
        f"{line}\n"
        f"WARNING: the logbridge viewer listens on {host}:{port}, reachable from other\n"
        "machines. It has no login and no encryption: anyone who can reach this port can\n"
        "read every run, metric, log and file of the store.\n"
        f"{line}\n"
    )
    sys.stderr.flush()
