"""OpenAI-compatible HTTP client: chat completions (with tool calls) and embeddings.

Works with any server speaking the OpenAI API (OpenAI, Azure OpenAI, vLLM, Ollama, LiteLLM):
set LLM_PROVIDER=openai, LLM_BASE_URL, LLM_MODEL and the key (LLM_API_KEY or LLM_API_KEY_FILE).
"""

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from .provider import Completion, Embeddings, Message, ModelError, ToolCall, ToolSpec, Usage

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_BACKOFF_SECONDS = 20.0


class OpenAIClient:
    """POSTs JSON with a timeout, retrying timeouts, connection errors, 429 and 5xx."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout_seconds: float,
        max_retries: int,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout_seconds = timeout_seconds
        self.max_retries = max_retries
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 5.0)),
            transport=transport,
        )

    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        attempts = self.max_retries + 1
        reason = "no attempt made"
        for attempt in range(attempts):
            delay = min(0.5 * 2**attempt, MAX_BACKOFF_SECONDS)
            try:
                response = self._http.post(path, json=payload)
            except httpx.TimeoutException:
                reason = f"timed out after {self.timeout_seconds}s"
            except httpx.TransportError as error:
                reason = f"connection failed ({type(error).__name__}: {error})"
            else:
                if response.is_success:
                    body = response.json()
                    if not isinstance(body, dict):
                        raise ModelError(f"POST {path}: expected a JSON object, got {body!r:.200}")
                    return body
                reason = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in RETRYABLE_STATUS:
                    raise ModelError(f"POST {path} failed: {reason}")
                delay = _retry_after(response) or delay
            if attempt + 1 < attempts:
                log.warning("model call failed, retrying", extra={"reason": reason, "delay": delay})
                self._sleep(delay)
        raise ModelError(f"POST {path} failed after {attempts} attempt(s): {reason}")

    def close(self) -> None:
        self._http.close()


def _retry_after(response: httpx.Response) -> float | None:
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return min(max(seconds, 0.0), MAX_BACKOFF_SECONDS)


def _to_wire(message: Message) -> dict[str, Any]:
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


class OpenAIChatModel:
    """`POST {base_url}/chat/completions`, with the tools as OpenAI function definitions."""

    provider = "openai"

    def __init__(self, client: OpenAIClient, model: str) -> None:
        self.client = client
        self.model = model

    def complete(self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()) -> Completion:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [_to_wire(message) for message in messages],
        }
        if tools:
            payload["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.parameters,
                    },
                }
                for tool in tools
            ]
        data = self.client.post("chat/completions", payload)
        try:
            choice = data["choices"][0]
            reply = choice["message"]
            calls = tuple(
                ToolCall(
                    id=str(call["id"]),
                    name=str(call["function"]["name"]),
                    arguments=str(call["function"].get("arguments") or "{}"),
                )
                for call in reply.get("tool_calls") or []
            )
            usage = data.get("usage") or {}
            return Completion(
                message=Message("assistant", reply.get("content") or "", calls),
                usage=Usage(
                    int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
                ),
                model=str(data.get("model", self.model)),
                finish_reason=str(choice.get("finish_reason") or "stop"),
            )
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise ModelError(f"unexpected chat completion ({error!r}): {data!r:.300}") from error


class OpenAIEmbedder:
    """`POST {base_url}/embeddings`; vectors are normalised to unit length."""

    provider = "openai"

    def __init__(self, client: OpenAIClient, model: str, dimensions: int) -> None:
        self.client = client
        self.model = model
        self.dimensions = dimensions

    def embed(self, texts: Sequence[str]) -> Embeddings:
        payload = {"model": self.model, "input": list(texts), "dimensions": self.dimensions}
        data = self.client.post("embeddings", payload)
        try:
            rows = sorted(data["data"], key=lambda row: int(row["index"]))
            vectors = [_unit([float(x) for x in row["embedding"]]) for row in rows]
            usage = data.get("usage") or {}
            tokens = int(usage.get("prompt_tokens", 0))
        except (KeyError, TypeError, ValueError) as error:
            raise ModelError(
                f"unexpected embeddings response ({error!r}): {data!r:.300}"
            ) from error
        if len(vectors) != len(texts) or any(len(v) != self.dimensions for v in vectors):
            raise ModelError(
                f"expected {len(texts)} vectors of {self.dimensions} dimensions from {self.model}; "
                "set RAG_EMBEDDING_DIMENSIONS to the model's size"
            )
        return Embeddings(vectors=vectors, usage=Usage(input_tokens=tokens), model=self.model)


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else vector
