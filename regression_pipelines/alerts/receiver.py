"""A tiny loopback webhook receiver that records what it is sent.

Why: the lab's Alertmanager forwards to a webhook, and tests and demos need something real to receive it
(`python -m regression_pipelines.alerts.receiver --port 19094` prints every notification).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookReceiver:
    """Records JSON bodies POSTed to it; `status` lets a test make it fail like a sink that is down."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, on_body: Callable[[Any], None] | None = None):
        self.bodies: list[Any] = []
        self.status = 200
        self._lock = threading.Lock()
        self._on_body = on_body
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver.status
                if status < 300:
                    body = json.loads(raw or b"null")
                    with receiver._lock:
                        receiver.bodies.append(body)
                    if receiver._on_body:
                        receiver._on_body(body)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, predicate: Callable[[list[Any]], bool], timeout_s: float = 30.0) -> list[Any]:
        """Poll until predicate(bodies) holds; raise TimeoutError naming what arrived."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                snapshot = list(self.bodies)
            if predicate(snapshot):
                return snapshot
            time.sleep(0.1)
        raise TimeoutError(f"receiver at {self.url} did not get the expected alerts in {timeout_s}s: {snapshot}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=19094)
    args = parser.parse_args()
    with WebhookReceiver(port=args.port, on_body=lambda body: print(json.dumps(body), flush=True)) as rx:
        print(f"listening on {rx.url}", flush=True)
        rx.thread.join()


if __name__ == "__main__":
    main()
