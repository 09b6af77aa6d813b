"""The OpenAI-compatible provider, on the official `openai` SDK: chat (with tool calls), embeddings.

Works with any server speaking the OpenAI API (OpenAI, Azure OpenAI's /openai/v1 endpoint,
vLLM, Ollama, a LiteLLM gateway): set LLM_PROVIDER=openai, LLM_BASE_URL, LLM_MODEL and the
key. Timeouts, retries with backoff (honouring `Retry-After`) and the wire format are the
SDK's; this module maps its types to the provider interface and its errors to `ModelError`.
"""

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import openai

from .provider import Completion, Embeddings, Message, ModelError, ToolCall, ToolSpec, Usage


def make_client(
    base_url: str, api_key: str | None, timeout_seconds: float, max_retries: int
) -> openai.OpenAI:
    """The SDK client: LLM_TIMEOUT_SECONDS per attempt, LLM_MAX_RETRIES retries."""
    # A gateway without auth (a local vLLM or Ollama) takes any key; the SDK insists on one.
    return openai.OpenAI(
        base_url=base_url,
        api_key=api_key or "no-key",
        timeout=timeout_seconds,
        max_retries=max_retries,
    )


@contextmanager
def provider_errors(client: openai.OpenAI, what: str) -> Iterator[None]:
    """Turn the SDK's exceptions into `ModelError`s that say what is wrong and what to do."""
    where = f"{what} at {client.base_url}"
    tries = f"after {client.max_retries + 1} attempt(s)"
    try:
        yield
    except openai.APITimeoutError as error:
        raise ModelError(
            f"{where} timed out {tries} of {client.timeout}s each: the provider is slow or "
            "unreachable; raise LLM_TIMEOUT_SECONDS or check its status",
            kind="timeout",
        ) from error
    except openai.APIConnectionError as error:
        raise ModelError(
            f"{where}: cannot connect {tries} ({error.__cause__ or error}): check "
            "LLM_BASE_URL and that the network policy lets the pod reach it",
            kind="connection",
        ) from error
    except openai.RateLimitError as error:
        raise ModelError(
            f"{where} is rate-limited (HTTP 429) {tries}: {_detail(error)}; lower the traffic, "
            "raise the quota or LLM_MAX_RETRIES",
            kind="rate_limit",
        ) from error
    except (openai.AuthenticationError, openai.PermissionDeniedError) as error:
        raise ModelError(
            f"{where} refused the key (HTTP {error.status_code}): {_detail(error)}; set "
            "LLM_API_KEY or LLM_API_KEY_FILE to a key allowed to use this model",
            kind="auth",
        ) from error
    except openai.NotFoundError as error:
        raise ModelError(
            f"{where}: not found (HTTP 404): {_detail(error)}; check the model name and that "
            "LLM_BASE_URL ends with the API's version path (e.g. /v1)",
            kind="not_found",
        ) from error
    except openai.APIStatusError as error:
        server = error.status_code >= 500
        hint = "the provider failed, retries included" if server else "the request was refused"
        raise ModelError(
            f"{where} failed with HTTP {error.status_code} ({hint}): {_detail(error)}",
            kind="server_error" if server else "bad_request",
        ) from error
    except openai.APIResponseValidationError as error:
        raise ModelError(
            f"{where} answered something that is not the OpenAI API: {error}",
            kind="bad_response",
        ) from error


def _detail(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:300]
    return error.message[:300]


def _to_wire(message: Message) -> Any:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    return wire


def _tool(tool: ToolSpec) -> Any:
    function = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
    return {"type": "function", "function": function}


class OpenAIChatModel:
    """`client.chat.completions.create`, with the tools as OpenAI function definitions."""

    provider = "openai"

    def __init__(self, client: openai.OpenAI, model: str) -> None:
        self.client = client
        self.model = model

    def complete(self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()) -> Completion:
        extra: dict[str, Any] = {"tools": [_tool(tool) for tool in tools]} if tools else {}
        with provider_errors(self.client, f"chat model {self.model!r}"):
            response = self.client.chat.completions.create(
                model=self.model, messages=[_to_wire(m) for m in messages], **extra
            )
        if not response.choices:
            raise ModelError(f"chat model {self.model!r} returned no choice", kind="bad_response")
        choice = response.choices[0]
        calls = tuple(
            ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments or "{}")
            for call in choice.message.tool_calls or []
            if call.type == "function"
        )
        usage = response.usage
        return Completion(
            message=Message("assistant", choice.message.content or "", calls),
            usage=Usage(usage.prompt_tokens, usage.completion_tokens) if usage else Usage(),
            model=response.model or self.model,
            finish_reason=choice.finish_reason or "stop",
        )


class OpenAIEmbedder:
    """`client.embeddings.create`; vectors are normalised to unit length."""

    provider = "openai"

    def __init__(self, client: openai.OpenAI, model: str, dimensions: int) -> None:
        self.client = client
        self.model = model
        self.dimensions = dimensions

    def embed(self, texts: Sequence[str]) -> Embeddings:
        with provider_errors(self.client, f"embedding model {self.model!r}"):
            response = self.client.embeddings.create(
                model=self.model,
                input=list(texts),
                dimensions=self.dimensions,
                encoding_format="float",  # base64 is the SDK's default; not every server has it
            )
        rows = sorted(response.data, key=lambda row: row.index)
        vectors = [_unit(list(row.embedding)) for row in rows]
        if len(vectors) != len(texts) or any(len(v) != self.dimensions for v in vectors):
            raise ModelError(
                f"expected {len(texts)} vectors of {self.dimensions} dimensions from {self.model}; "
                "set RAG_EMBEDDING_DIMENSIONS to the model's size",
                kind="bad_response",
            )
        tokens = response.usage.prompt_tokens if response.usage else 0
        return Embeddings(vectors=vectors, usage=Usage(input_tokens=tokens), model=self.model)


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else vector
