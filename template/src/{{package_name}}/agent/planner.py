"""The offline model's behaviour: a deterministic keyword planner.

It picks at most one tool per question from simple rules, then answers from the tool's
result. It cannot chain tools (look something up, then compute with it): the scenario
evaluation shows that gap, which a real model closes.
"""

import json
import re
from collections.abc import Sequence

from ..llm.provider import Message, ToolCall, ToolSpec

ARITHMETIC = re.compile(r"[-+(]*\d[\d.\s()+\-*/%]*[+\-*/%][\d.\s()+\-*/%]*\d[)\s]*")
TIMEZONE = re.compile(r"\b(UTC|[A-Z][a-z]+/[A-Z][A-Za-z_]+(?:/[A-Z][A-Za-z_]+)?)\b")
TIME_WORDS = re.compile(r"\b(time|date|day|today|now|weekday|clock)\b", re.IGNORECASE)
DEFINITION = re.compile(
    r"\b(?:what is|what's|what are|define|explain|meaning of)\s+(?:an?\s+|the\s+)?(.+?)[?.!]*$",
    re.IGNORECASE,
)
ITEMS = re.compile(r"\bitems?\b.*?(?:named|called|about|matching)\s+['\"]?([\w .-]+?)['\"]?[?.!]*$")
CANNOT = "I cannot answer that with the tools I have."


def plan(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Message:
    """The next assistant message: one tool call, or the answer from the last tool results."""
    if messages and messages[-1].role == "tool":
        return Message("assistant", _answer(messages))
    question = next((m.content for m in reversed(messages) if m.role == "user"), "")
    available = {tool.name for tool in tools}
    call = _choose(question.strip(), available)
    if call is None:
        return Message("assistant", CANNOT)
    name, arguments = call
    return Message(
        "assistant", "", (ToolCall(f"call_{len(messages)}", name, json.dumps(arguments)),)
    )


def _choose(question: str, available: set[str]) -> tuple[str, dict[str, str]] | None:
    arithmetic = ARITHMETIC.search(question)
    if "calculator" in available and arithmetic:
        return "calculator", {"expression": arithmetic.group(0).strip()}
    if "clock" in available and TIME_WORDS.search(question):
        zone = TIMEZONE.search(question)
        return "clock", {"timezone": zone.group(1) if zone else "UTC"}
    items = ITEMS.search(question)
    if "search_items" in available and items:
        return "search_items", {"query": items.group(1).strip()}
    definition = DEFINITION.search(question)
    if "lookup" in available and definition:
        return "lookup", {"query": definition.group(1).strip()}
    return None


def _answer(messages: Sequence[Message]) -> str:
    """Summarise the results of the last round of tool calls."""
    names = {call.id: call.name for m in messages for call in m.tool_calls}
    results: list[tuple[str, str]] = []
    for message in reversed(messages):
        if message.role != "tool":
            break
        results.insert(0, (names.get(message.tool_call_id or "", "tool"), message.content))
    sentences = []
    for name, content in results:
        if content.startswith(("error:", "refused:", "timeout:")):
            sentences.append(
                f"I could not complete that ({name}: {content.split(':', 1)[1].strip()})."
            )
        elif name == "calculator":
            sentences.append(f"The result is {content}.")
        elif name == "clock":
            sentences.append(f"It is {content}.")
        else:
            sentences.append(content)
    return " ".join(sentences)
