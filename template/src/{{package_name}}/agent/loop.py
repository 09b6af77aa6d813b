"""The agent loop: model → tools → model ... within a step limit and token and cost budgets."""

import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Histogram

from ..llm.provider import ChatModel, Message, ModelError, Usage
from ..llm.telemetry import Prices
from .tools import ToolRegistry

log = logging.getLogger(__name__)

SYSTEM_PROMPT = """\
You are a careful assistant that answers with the help of tools.
Call a tool whenever it can compute or look up part of the answer; never invent tool results.
If a tool reports an error, explain it. Answer in one or two sentences."""

# Recorded with every run and evaluation: a changed prompt is a new version.
PROMPT_VERSION = hashlib.sha256(SYSTEM_PROMPT.encode()).hexdigest()[:12]

StopReason = Literal["answered", "max_steps", "token_budget", "cost_budget", "model_error"]
EventKind = Literal["user", "model", "tool_call", "tool_result", "stop"]


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
    def __init__(
        self,
        model: ChatModel,
        tools: ToolRegistry,
        metrics: AgentMetrics,
        max_steps: int,
        max_tokens: int,
        max_cost_usd: float,
        prices: Prices | None = None,
    ) -> None:
        self.model = model
        self.tools = tools
        self.metrics = metrics
        self.max_steps = max_steps
        self.max_tokens = max_tokens
        self.max_cost_usd = max_cost_usd
        self.prices = prices or Prices()

    def run(self, question: str) -> Run:
        run = Run(run_id=uuid.uuid4().hex, question=question)
        run.transcript.append(Event(0, "user", question))
        messages = [Message("system", SYSTEM_PROMPT), Message("user", question)]
        specs = self.tools.specs()
        for number in range(1, self.max_steps + 1):
            run.steps = number
            try:
                completion = self.model.complete(messages, specs)
            except ModelError as error:
                return self._stop(run, "model_error", f"The model provider failed: {error}")
            reply = completion.message
            run.usage += completion.usage
            run.cost_usd = self.prices.cost(run.usage)
            run.transcript.append(
                Event(
                    number,
                    "model",
                    reply.content,
                    input_tokens=completion.usage.input_tokens,
                    output_tokens=completion.usage.output_tokens,
                )
            )
            if not reply.tool_calls:
                return self._stop(run, "answered", reply.content)
            if run.usage.total_tokens > self.max_tokens:
                return self._stop(
                    run, "token_budget", f"Stopped: the token budget of {self.max_tokens} is spent."
                )
            if run.cost_usd > self.max_cost_usd:
                return self._stop(
                    run,
                    "cost_budget",
                    f"Stopped: the cost budget of ${self.max_cost_usd} is spent.",
                )
            messages.append(reply)
            for call in reply.tool_calls:
                run.transcript.append(
                    Event(number, "tool_call", "", tool=call.name, arguments=call.arguments)
                )
                outcome = self.tools.call(call.name, call.arguments)
                run.transcript.append(
                    Event(
                        number,
                        "tool_result",
                        outcome.output,
                        tool=call.name,
                        status=outcome.status,
                        duration_ms=outcome.duration_ms,
                    )
                )
                content = (
                    outcome.output
                    if outcome.status == "ok"
                    else f"{outcome.status}: {outcome.output}"
                )
                messages.append(Message("tool", content, tool_call_id=call.id))
        return self._stop(
            run, "max_steps", f"Stopped after {self.max_steps} steps without a final answer."
        )

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
