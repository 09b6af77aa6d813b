"""Deterministic offline models: no network, no weights, the same output for the same input.

They make tests and local runs reproducible and free. Their answers are simple on purpose:
the evaluation gate (`make eval`) shows what a real model adds.
"""

import hashlib
import itertools
import json
import math
import re
from collections.abc import Callable, Sequence

from .provider import Completion, Embeddings, Message, ToolSpec, Usage

TOKEN = re.compile(r"\w+|[^\w\s]")
WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset(
    WORD.findall(
        "a an and are as at be by can do does for from how i in is it its of on or that the "
        "this to was what when where which who why will with you your"
    )
)

# The offline chat model's behaviour: the next assistant message given the conversation.
Respond = Callable[[Sequence[Message], Sequence[ToolSpec]], Message]


def count_tokens(text: str) -> int:
    """A stable token count (words and punctuation), close enough for budgets and metrics."""
    return len(TOKEN.findall(text))


def words(text: str) -> list[str]:
    """Lower-case content words, crudely stemmed, for lexical matching."""
    return [_stem(word) for word in WORD.findall(text.lower()) if word not in STOPWORDS]


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


class OfflineChatModel:
    """A chat model whose replies come from a deterministic `respond` function."""

    provider = "offline"

    def __init__(self, respond: Respond, model: str = "offline") -> None:
        self._respond = respond
        self.model = model

    def complete(self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()) -> Completion:
        reply = self._respond(messages, tools)
        prompt = [m.content for m in messages] + [
            c.arguments for m in messages for c in m.tool_calls
        ]
        prompt += [json.dumps(tool.parameters) + tool.description for tool in tools]
        output = [reply.content] + [call.name + call.arguments for call in reply.tool_calls]
        usage = Usage(sum(map(count_tokens, prompt)), sum(map(count_tokens, output)))
        reason = "tool_calls" if reply.tool_calls else "stop"
        return Completion(message=reply, usage=usage, model=self.model, finish_reason=reason)


class HashingEmbedder:
    """Feature hashing of words and word pairs into a unit vector: lexical similarity.

    Questions that share words with a passage land near it; paraphrases with other words do
    not, which is exactly what a real embedding model improves.
    """

    provider = "offline"

    def __init__(self, dimensions: int = 256, model: str = "offline-hashing") -> None:
        self.dimensions = dimensions
        self.model = model

    def embed(self, texts: Sequence[str]) -> Embeddings:
        vectors = [self._vector(text) for text in texts]
        usage = Usage(input_tokens=sum(count_tokens(text) for text in texts))
        return Embeddings(vectors=vectors, usage=usage, model=self.model)

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dimensions
        terms = words(text)
        features = terms + [f"{a} {b}" for a, b in itertools.pairwise(terms)]
        for feature in features:
            digest = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest())
            sign = 1.0 if digest >> 63 else -1.0
            vector[digest % self.dimensions] += sign * (1.0 if " " not in feature else 0.5)
        norm = math.sqrt(sum(x * x for x in vector))
        return [x / norm for x in vector] if norm else vector
