"""The typed tool registry: JSON-schema arguments, timeouts, and refusal of bad calls."""

import json
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from ..llm.provider import ToolSpec
from ..llm.telemetry import LLMMetrics, step

log = logging.getLogger(__name__)

Args = TypeVar("Args", bound=BaseModel)
Status = Literal["ok", "error", "refused", "timeout"]


class ToolError(Exception):
    """An expected failure of a tool (bad input, nothing found): told to the model as is."""


@dataclass(frozen=True)
class Tool(Generic[Args]):
    """A tool: `args` is a pydantic model, whose JSON schema the model sees."""

    name: str
    description: str
    args: type[Args]
    run: Callable[[Args], str]
    timeout_seconds: float | None = None  # None: the registry's default

    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.args.model_json_schema())


@dataclass(frozen=True)
class Outcome:
    status: Status
    output: str
    duration_ms: float


class ToolRegistry:
    """Runs the tools the model asks for, each in a worker thread with a timeout."""

    def __init__(
        self, tools: Iterable[Tool[Any]], metrics: LLMMetrics, timeout_seconds: float
    ) -> None:
        self.tools = {tool.name: tool for tool in tools}
        self.metrics = metrics
        self.timeout_seconds = timeout_seconds
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tool")

    def specs(self) -> list[ToolSpec]:
        return [tool.spec() for tool in self.tools.values()]

    def call(self, name: str, arguments: str) -> Outcome:
        """Validate and run one call; never raises: failures become an outcome for the model."""
        start = time.perf_counter()
        with step(self.metrics, "tool", name if name in self.tools else "unknown") as current:
            status, output = self._call(name, arguments)
            if status != "ok":
                current.fail(f"{status}: {output}")
            current.span.set_attribute("tool.status", status)
        return Outcome(status, output, round((time.perf_counter() - start) * 1000, 3))

    def _call(self, name: str, arguments: str) -> tuple[Status, str]:
        tool = self.tools.get(name)
        if tool is None:
            return "refused", f"unknown tool {name!r}; available: {', '.join(sorted(self.tools))}"
        try:
            args = tool.args.model_validate(json.loads(arguments or "{}"))
        except (ValueError, ValidationError) as error:
            return "refused", f"invalid arguments for {name}: {_short(error)}"
        timeout = tool.timeout_seconds or self.timeout_seconds
        future = self._pool.submit(tool.run, args)
        try:
            return "ok", future.result(timeout=timeout)
        except FutureTimeout:
            future.cancel()  # a running thread cannot be stopped: tools must bound their work
            return "timeout", f"{name} did not finish within {timeout} s"
        except ToolError as error:
            return "error", str(error)
        except Exception as error:
            log.exception("tool failed", extra={"tool": name})
            return "error", f"{name} failed unexpectedly ({type(error).__name__})"


def _short(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in error.errors()
        )
    return str(error)
