"""A monitoring service for the pings: a small HTTP server on 127.0.0.1 that keeps what
it was sent."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Monitor:
    def __init__(self, delay: float = 0.0, status: int = 200) -> None:
        self.requests: list[tuple[str, dict[str, object]]] = []
        monitor = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                time.sleep(delay)
                length = int(self.headers["Content-Length"])
                monitor.requests.append((self.path, json.loads(self.rfile.read(length))))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.block_on_close = False  # a deliberately slow handler must not hold teardown
        self.url = f"http://127.0.0.1:{self.server.server_port}/ping"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def paths(self) -> list[str]:
        """The paths pinged, without their query strings, in the order they arrived."""
        return [path.split("?")[0] for path, _ in self.requests]
