"""Record the DEBUG logs of a third-party SDK while the console shows only INFO.

``logbridge.basicConfig(level="DEBUG", console_level="INFO")`` records everything the
script's libraries log, down to urllib3's DEBUG lines about each connection and request,
while the console stays quiet. The example serves a few files from a local HTTP server on
127.0.0.1 (started by the script itself) and fetches them with urllib3.
"""

from __future__ import annotations

import http.server
import logging
import threading

import urllib3

import logbridge


class _Files(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = f"contents of {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's API
        logging.getLogger("fileserver").debug(format, *args)


def main() -> None:
    """Fetch three files from a local server with urllib3, logging what was downloaded."""
    run = logbridge.basicConfig(level="DEBUG", console_level="INFO", experiment="sdk-debug")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    log = logging.getLogger("download")
    try:
        http_pool = urllib3.PoolManager()
        for name in ("a.txt", "b.txt", "c.txt"):
            response = http_pool.request("GET", f"{base}/{name}", timeout=10)
            log.info("downloaded %s (%d bytes)", name, len(response.data))
    finally:
        server.shutdown()
        server.server_close()
    print(f"run {run.id}: {len(run.get_logs(logger='urllib3'))} urllib3 records recorded")


if __name__ == "__main__":
    main()
