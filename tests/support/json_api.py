"""The request handler of the local stand-ins for HTTP APIs (Argo CD, GitLab, the OIDC
issuer): quiet, and answering JSON with its length."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any


class JsonHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def reply(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def start_serving(server: HTTPServer) -> threading.Thread:
    """Serve from a daemon thread whose loop polls every 50 ms: `server.shutdown()` then
    returns at once, not after up to half a second (`serve_forever`'s default poll)."""
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return thread
