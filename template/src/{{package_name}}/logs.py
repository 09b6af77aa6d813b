"""Structured JSON logs, one object per line, carrying the current request id."""

import json
import logging
import sys
import time
from contextvars import ContextVar
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# One encoder for every record (json.dumps(..., default=...) would build one per call).
_encode = json.JSONEncoder(default=str).encode


class JsonFormatter(logging.Formatter):
    """Render a log record as a single JSON object; `extra={...}` fields are kept."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self._second: tuple[int, str] = (-1, "")  # the last second formatted, and its text

    def timestamp(self, created: float) -> str:
        """ISO 8601 in UTC with microseconds; the date and time part is formatted once a second."""
        second = int(created)
        cached = self._second
        if cached[0] != second:  # a tuple swapped whole: safe with the server's threads
            cached = self._second = (
                second,
                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)),
            )
        return f"{cached[1]}.{int((created - second) * 1_000_000):06d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        entry.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _encode(entry)


def configure_logging(service: str, level: str) -> None:
    """Send every logger's records to stdout as JSON (uvicorn's included)."""
    # Skip what the JSON never shows: the caller's frame, thread and process (the logging
    # HOWTO's "Optimization" section); a record then costs less on every request.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # replaced by our access log
