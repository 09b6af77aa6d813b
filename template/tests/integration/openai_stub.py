"""A local server speaking the OpenAI API, started by the tests: chat completions (with tool
calls), embeddings, and the failures a real provider gives (errors, 429 with Retry-After,
slowness). The service's `openai` SDK talks to it over real HTTP, exactly as to a gateway.
"""

import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# The assistant message to answer a chat request's body with.
Respond = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float  # time.monotonic() on arrival


@dataclass
class Fault:
    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)


def embedding(text: str, dimensions: int) -> list[float]:
    """Hashed bag of words as a unit vector: texts sharing words land near each other (a
    lexical stand-in for a real model, enough to retrieve the right passage)."""
    vector = [0.0] * dimensions
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        vector[int.from_bytes(digest[:4], "big") % dimensions] += 1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def echo(body: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": f"echo: {body['messages'][-1]['content']}"}


class OpenAIStub:
    """`with OpenAIStub() as stub:` serves on `stub.base_url` (…/v1) in a thread."""

    def __init__(self, respond: Respond = echo, usage: tuple[int, int] = (20, 5)) -> None:
        self.respond = respond
        self.usage = usage
        self.received: list[Received] = []
        self.faults: list[Fault] = []  # answered in order, one per request, before the real ones
        self.delay_seconds = 0.0
        self.dimensions: int | None = None  # embeddings of this size, whatever is asked
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                stub._handle(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_port}/v1"

    def __enter__(self) -> "OpenAIStub":
        # shutdown() returns within one poll of the serving loop (0.5 s by default)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail(self, status: int, message: str, times: int = 1, **headers: str) -> None:
        """The next `times` requests get this error (headers: e.g. retry_after="1")."""
        wire = {name.replace("_", "-").title(): value for name, value in headers.items()}
        self.faults.extend(Fault(status, message, wire) for _ in range(times))

    def paths(self) -> list[str]:
        return [request.path for request in self.received]

    def _handle(self, http: BaseHTTPRequestHandler) -> None:
        body = json.loads(http.rfile.read(int(http.headers["Content-Length"])))
        with self._lock:
            self.received.append(
                Received(
                    http.path,
                    body,
                    {k.lower(): v for k, v in http.headers.items()},
                    time.monotonic(),
                )
            )
            fault = self.faults.pop(0) if self.faults else None
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        if fault is not None:
            error = {"message": fault.message, "type": "stub_error", "code": str(fault.status)}
            _reply(http, fault.status, {"error": error}, fault.headers)
        elif http.path == "/v1/chat/completions":
            _reply(http, 200, self._chat(body))
        elif http.path == "/v1/embeddings":
            _reply(http, 200, self._embeddings(body))
        else:
            _reply(http, 404, {"error": {"message": f"no route {http.path}", "type": "stub"}})

    def _chat(self, body: dict[str, Any]) -> dict[str, Any]:
        message = self.respond(body)
        prompt, completion = self.usage
        return {
            "id": f"chatcmpl-{len(self.received)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }

    def _embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        texts = body["input"]
        dimensions = self.dimensions or body.get("dimensions", 8)
        data = [
            {"object": "embedding", "index": i, "embedding": embedding(text, dimensions)}
            for i, text in reversed(list(enumerate(texts)))  # out of order, as servers may
        ]
        tokens = sum(len(text.split()) for text in texts)
        return {
            "object": "list",
            "model": body["model"],
            "data": data,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


def _reply(
    http: BaseHTTPRequestHandler,
    status: int,
    payload: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> None:
    data = json.dumps(payload).encode()
    http.send_response(status)
    http.send_header("Content-Type", "application/json")
    http.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        http.send_header(name, value)
    http.end_headers()
    http.wfile.write(data)
