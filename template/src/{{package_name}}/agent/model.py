"""The agent's model: pydantic-ai's OpenAI model with the LLM_* settings, or the offline planner.

Every request goes through `MeteredModel`: the `llm_*` Prometheus metrics the other LLM
services export, and the cost from LLM_INPUT/OUTPUT_COST_PER_1K_TOKENS, which the run's
`cost_limit` is checked against (with no prices set, pydantic-ai's price table estimates it
for the models it knows; the offline model is free).
"""

import time
from decimal import Decimal

import openai
from openai import AsyncOpenAI
from pydantic_ai import ModelMessage, ModelResponse
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.settings import ModelSettings

from ..llm.factory import api_key, online, prices
from ..llm.provider import Usage
from ..llm.telemetry import LLMMetrics, Prices
from ..settings import Settings
from .planner import offline_model


class MeteredModel(WrapperModel):
    """Counts, times and prices every request of the model it wraps."""

    def __init__(self, wrapped: Model, metrics: LLMMetrics, prices: Prices, provider: str) -> None:
        super().__init__(wrapped)
        self.metrics = metrics
        self.prices = prices
        self.labels = (provider, wrapped.model_name, "chat")

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        start = time.perf_counter()
        try:
            response = await super().request(messages, model_settings, model_request_parameters)
        except Exception as error:
            self.metrics.requests.labels(*self.labels, "error").inc()
            self.metrics.errors.labels(*self.labels, error_kind(error)).inc()
            raise
        finally:
            elapsed = time.perf_counter() - start
        self.metrics.latency.labels(*self.labels).observe(elapsed)
        self.metrics.requests.labels(*self.labels, "ok").inc()
        usage = Usage(response.usage.input_tokens, response.usage.output_tokens)
        if usage.output_tokens:
            self.metrics.per_output_token.labels(*self.labels).observe(
                elapsed / usage.output_tokens
            )
        self.metrics.tokens.labels(*self.labels, "input").inc(usage.input_tokens)
        self.metrics.tokens.labels(*self.labels, "output").inc(usage.output_tokens)
        if self.prices.input_per_1k or self.prices.output_per_1k:
            response.usage.cost = Decimal(str(self.prices.cost(usage)))
        elif self.labels[0] == "offline":
            response.usage.cost = Decimal(0)
        self.metrics.cost.labels(*self.labels).inc(float(response.usage.cost or 0))
        return response


def error_kind(error: Exception) -> str:
    """The `error` label of llm_request_errors_total, as the other LLM services give it."""
    if isinstance(error, openai.APITimeoutError):
        return "timeout"
    if isinstance(error, openai.APIConnectionError):
        return "connection"
    status = getattr(error, "status_code", None)
    if isinstance(error, ModelHTTPError | openai.APIStatusError) and isinstance(status, int):
        if status == 429:
            return "rate_limit"
        if status in (401, 403):
            return "auth"
        if status == 404:
            return "not_found"
        return "server_error" if status >= 500 else "bad_request"
    return "unexpected"


def build_model(settings: Settings, metrics: LLMMetrics) -> MeteredModel:
    """The model LLM_PROVIDER names: "openai" (any OpenAI-compatible server) or "offline"
    (refused in staging and production, as for the other LLM services)."""
    if not online(settings):
        return MeteredModel(offline_model(), metrics, prices(settings), "offline")
    client = AsyncOpenAI(
        base_url=settings.llm_base_url,
        api_key=api_key(settings) or "not-set",
        timeout=settings.llm_timeout_seconds,
        max_retries=settings.llm_max_retries,
    )
    model = OpenAIChatModel(settings.llm_model, provider=OpenAIProvider(openai_client=client))
    return MeteredModel(model, metrics, prices(settings), "openai")
