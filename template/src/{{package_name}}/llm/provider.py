"""The interface between the service and a language model provider."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCall:
    """A call the model asks for; `arguments` is the model's raw JSON text (may be invalid)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Message:
    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None  # on a "tool" message: the call it answers


@dataclass(frozen=True)
class ToolSpec:
    """A tool offered to the model: its name, what it does and a JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class Completion:
    message: Message
    usage: Usage
    model: str
    finish_reason: str = "stop"


@dataclass(frozen=True)
class Embeddings:
    vectors: list[list[float]]
    usage: Usage
    model: str


class ModelError(RuntimeError):
    """The provider could not answer (after retries): the message says why and what to do.

    `kind` is a short, bounded reason (timeout, connection, rate_limit, auth, not_found,
    bad_request, server_error, bad_response, config), used as a metric label.
    """

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind


class ChatModel(Protocol):
    provider: str
    model: str

    def complete(self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()) -> Completion:
        """The model's next message given the conversation and the tools it may call."""
        ...


class Embedder(Protocol):
    provider: str
    model: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> Embeddings:
        """One unit-length vector per text, in order."""
        ...
