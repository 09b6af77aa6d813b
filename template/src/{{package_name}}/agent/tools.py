"""The agent's toolset: pydantic-ai tools, each call traced, measured and timed.

pydantic-ai validates the arguments against each tool's signature, refuses unknown tools and
invalid arguments, and stops a tool at its timeout (the model is told each time, and may try
again). This wrapper adds what the service needs around every call that runs: a span and the
`llm_steps_total` metrics, and each call's outcome for the run's transcript.
"""

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic_ai import ModelRetry, RunContext, Tool
from pydantic_ai.toolsets import AbstractToolset, FunctionToolset, ToolsetTool, WrapperToolset

from ..llm.telemetry import LLMMetrics, step

log = logging.getLogger(__name__)

Status = Literal["ok", "error", "refused", "timeout"]
TIMED_OUT = "Timed out after"


@dataclass(frozen=True)
class Outcome:
    status: Status
    duration_ms: float


@dataclass
class RunLog:
    """A run's dependencies (pydantic-ai `deps`): the outcome of each tool call, by call id."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)


@dataclass
class MeteredToolset(WrapperToolset[RunLog]):
    """Traces and measures every tool call; an unexpected exception becomes an error for the model."""

    metrics: LLMMetrics

    async def call_tool(
        self,
        name: str,
        tool_args: dict[str, Any],
        ctx: RunContext[RunLog],
        tool: ToolsetTool[RunLog],
    ) -> Any:
        status: Status = "error"
        start = time.perf_counter()
        try:
            with step(self.metrics, "tool", name) as current:
                try:
                    result = await super().call_tool(name, tool_args, ctx, tool)
                except ModelRetry as error:
                    # FunctionToolset stops a tool at its timeout with this ModelRetry
                    status = "timeout" if error.message.startswith(TIMED_OUT) else "error"
                    current.fail(f"{status}: {error.message}")
                    raise
                except Exception as error:
                    log.exception("tool failed", extra={"tool": name})
                    current.fail(f"error: {type(error).__name__}")
                    raise ModelRetry(
                        f"{name} failed unexpectedly ({type(error).__name__})"
                    ) from error
                status = "ok"
                current.span.set_attribute("tool.status", status)
                return result
        finally:
            if ctx.tool_call_id is not None:
                elapsed = round((time.perf_counter() - start) * 1000, 3)
                ctx.deps.outcomes[ctx.tool_call_id] = Outcome(status, elapsed)


def toolset(
    tools: Sequence[Tool[Any]], metrics: LLMMetrics, timeout_seconds: float
) -> AbstractToolset[RunLog]:
    """The tools, each stopped after `timeout_seconds` unless it sets its own `timeout`."""
    function_tools = FunctionToolset[RunLog](list(tools), timeout=timeout_seconds)
    return MeteredToolset(wrapped=function_tools, metrics=metrics)


def tool_schemas(tools: Sequence[Tool[Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, description, JSON schema of the arguments) of each tool, as the model sees them."""
    return [
        (tool.name, tool.tool_def.description or "", tool.tool_def.parameters_json_schema)
        for tool in tools
    ]
