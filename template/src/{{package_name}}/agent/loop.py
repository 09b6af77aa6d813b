"""The agent: a pydantic-ai agent run within limits, and the transcript of every run.

pydantic-ai runs the loop (model → tools → model ...), enforces the limits (`UsageLimits`:
model requests, tokens, cost; and a deadline) and traces it with OpenTelemetry (GenAI spans
of the run, each model request and each tool). This module turns a run's messages into the
service's transcript and stop reason.
"""

import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from opentelemetry.trace import TracerProvider
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic_ai import Agent as PydanticAgent
from pydantic_ai import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    Tool,
    ToolCallPart,
    ToolReturnPart,
    UsageLimits,
    UserPromptPart,
    capture_run_messages,
)
from pydantic_ai.capabilities import Instrumentation
from pydantic_ai.exceptions import (
    ModelAPIError,
    RunTimedOut,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
)
from pydantic_ai.models import Model
from pydantic_ai.models.instrumented import InstrumentationSettings

from ..llm.provider import Usage
from ..llm.telemetry import LLMMetrics
from .tools import Outcome, RunLog, toolset

log = logging.getLogger(__name__)

SYSTEM_PROMPT = """\
You are a careful assistant that answers with the help of tools.
Call a tool whenever it can compute or look up part of the answer; never invent tool results.
If a tool reports an error, explain it. Answer in one or two sentences."""

# Recorded with every run and evaluation: a changed prompt is a new version.
PROMPT_VERSION = hashlib.sha256(SYSTEM_PROMPT.encode()).hexdigest()[:12]

StopReason = Literal[
    "answered", "max_steps", "token_budget", "cost_budget", "timeout", "model_error"
]
EventKind = Literal["user", "model", "tool_call", "tool_result", "stop"]
REFUSED = {"unknown_tool", "validation_error"}  # pydantic-ai's causes of a call never run


@dataclass(frozen=True)
class Limits:
    """The bounds of one run (AGENT_MAX_STEPS, _MAX_TOKENS, _MAX_COST_USD, _TIMEOUT_SECONDS)."""

    max_steps: int
    max_tokens: int
    max_cost_usd: float
    timeout_seconds: float
    tool_timeout_seconds: float


@dataclass(frozen=True)
class Event:
    """One line of a run's transcript."""

    step: int
    kind: EventKind
    content: str
    tool: str | None = None
    arguments: str | None = None
    status: str | None = None
    duration_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass
class Run:
    run_id: str
    question: str
    answer: str = ""
    stop_reason: StopReason = "max_steps"
    steps: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    transcript: list[Event] = field(default_factory=list)

    @property
    def tool_calls(self) -> list[str]:
        return [e.tool for e in self.transcript if e.kind == "tool_call" and e.tool is not None]


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "agent_runs_total",
            "Agent runs by why they stopped",
            ("stop_reason",),
            registry=registry,
        )
        self.steps = Histogram(
            "agent_run_steps",
            "Model steps per agent run",
            buckets=(1, 2, 3, 4, 6, 8, 12, 20),
            registry=registry,
        )


class Agent:
    """The service's agent: a pydantic-ai agent, its limits, and a transcript per run."""

    def __init__(
        self,
        model: Model,
        tools: Sequence[Tool[Any]],
        metrics: AgentMetrics,
        llm_metrics: LLMMetrics,
        limits: Limits,
        tracer_provider: TracerProvider | None = None,  # None: the global one (tracing.py)
    ) -> None:
        self.model = model
        self.tools = list(tools)
        self.metrics = metrics
        self.limits = limits
        self.agent = PydanticAgent(
            model,
            instructions=SYSTEM_PROMPT,
            deps_type=RunLog,
            toolsets=[toolset(self.tools, llm_metrics, limits.tool_timeout_seconds)],
            # A refused or failed call is told to the model, which may try again: the step
            # limit, not a retry count, ends a run that keeps failing.
            retries=limits.max_steps,
            # spans of the run, each model request and each tool call; no prompt nor answer text
            capabilities=[
                Instrumentation(
                    InstrumentationSettings(include_content=False, tracer_provider=tracer_provider)
                )
            ],
        )

    @property
    def usage_limits(self) -> UsageLimits:
        return UsageLimits(
            request_limit=self.limits.max_steps,
            total_tokens_limit=self.limits.max_tokens,
            cost_limit=Decimal(str(self.limits.max_cost_usd)),
        )

    async def run(self, question: str) -> Run:
        run = Run(run_id=uuid.uuid4().hex, question=question)
        deps = RunLog()
        with capture_run_messages() as messages:
            try:
                result = await self.agent.run(
                    question,
                    deps=deps,
                    usage_limits=self.usage_limits,
                    timeout=self.limits.timeout_seconds,
                )
            except UsageLimitExceeded as error:
                reason, answer = self._limit(str(error))
            except RunTimedOut:
                reason = "timeout"
                answer = f"Stopped: the run took longer than {self.limits.timeout_seconds} s."
            except (ModelAPIError, UnexpectedModelBehavior) as error:
                # the provider failed after its retries, or answered what is not a valid reply
                reason, answer = "model_error", f"The model provider failed: {error.message}"
            else:
                reason, answer = "answered", result.output
        _transcribe(run, messages, deps.outcomes)
        return self._stop(run, reason, answer)

    def _limit(self, error: str) -> tuple[StopReason, str]:
        if "request_limit" in error:
            return (
                "max_steps",
                f"Stopped after {self.limits.max_steps} steps without a final answer.",
            )
        if "cost_limit" in error:
            return (
                "cost_budget",
                f"Stopped: the cost budget of ${self.limits.max_cost_usd} is spent.",
            )
        return "token_budget", f"Stopped: the token budget of {self.limits.max_tokens} is spent."

    def _stop(self, run: Run, reason: StopReason, answer: str) -> Run:
        run.stop_reason = reason
        run.answer = answer
        run.transcript.append(Event(run.steps, "stop", answer, status=reason))
        self.metrics.runs.labels(reason).inc()
        self.metrics.steps.observe(run.steps)
        log.info(
            "agent run finished",
            extra={
                "run_id": run.run_id,
                "stop_reason": reason,
                "steps": run.steps,
                "tools": run.tool_calls,
                "input_tokens": run.usage.input_tokens,
                "output_tokens": run.usage.output_tokens,
                "cost_usd": round(run.cost_usd, 6),
            },
        )
        return run


def _transcribe(run: Run, messages: list[ModelMessage], outcomes: dict[str, Outcome]) -> None:
    """The run's messages as transcript events, usage and cost."""
    for message in messages:
        if isinstance(message, ModelResponse):
            run.steps += 1
            usage = Usage(message.usage.input_tokens, message.usage.output_tokens)
            run.usage += usage
            run.cost_usd += float(message.usage.cost or 0)
            text = "".join(part.content for part in message.parts if isinstance(part, TextPart))
            run.transcript.append(
                Event(
                    run.steps,
                    "model",
                    text,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                )
            )
            run.transcript.extend(
                Event(
                    run.steps,
                    "tool_call",
                    "",
                    tool=part.tool_name,
                    arguments=part.args_as_json_str(),
                )
                for part in message.parts
                if isinstance(part, ToolCallPart)
            )
            continue
        for part in message.parts if isinstance(message, ModelRequest) else ():
            if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                run.transcript.append(Event(0, "user", part.content))
            elif isinstance(part, ToolReturnPart):
                outcome = outcomes.get(part.tool_call_id)
                refused = part.retry is not None and part.retry.cause in REFUSED
                status = "refused" if refused or outcome is None else outcome.status
                content = part.model_response_str(wrap_if_error=False)
                run.transcript.append(
                    Event(
                        run.steps,
                        "tool_result",
                        content,
                        tool=part.tool_name,
                        status=status,
                        duration_ms=outcome.duration_ms if outcome else None,
                    )
                )
