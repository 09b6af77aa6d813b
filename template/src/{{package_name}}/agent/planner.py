"""The offline model's behaviour: a deterministic keyword planner (a pydantic-ai FunctionModel).

It picks at most one tool per question from simple rules, then answers from the tool's
result. It cannot chain tools (look something up, then compute with it): the scenario
evaluation shows that gap, which a real model closes.
"""

import re

from pydantic_ai import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

ARITHMETIC = re.compile(r"[-+(]*\d[\d.\s()+\-*/%]*[+\-*/%][\d.\s()+\-*/%]*\d[)\s]*")
TIMEZONE = re.compile(r"\b(UTC|[A-Z][a-z]+/[A-Z][A-Za-z_]+(?:/[A-Z][A-Za-z_]+)?)\b")
TIME_WORDS = re.compile(r"\b(time|date|day|today|now|weekday|clock)\b", re.IGNORECASE)
DEFINITION = re.compile(
    r"\b(?:what is|what's|what are|define|explain|meaning of)\s+(?:an?\s+|the\s+)?(.+?)[?.!]*$",
    re.IGNORECASE,
)
ITEMS = re.compile(r"\bitems?\b.*?(?:named|called|about|matching)\s+['\"]?([\w .-]+?)['\"]?[?.!]*$")
CANNOT = "I cannot answer that with the tools I have."


def plan(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """The next response: one tool call, or the answer from the last tool results."""
    last = messages[-1] if messages else None
    if isinstance(last, ModelRequest):
        results = [part for part in last.parts if isinstance(part, ToolReturnPart)]
        if results:
            return ModelResponse(parts=[TextPart(_answer(results))])
    question = next(
        (
            part.content
            for message in reversed(messages)
            if isinstance(message, ModelRequest)
            for part in message.parts
            if isinstance(part, UserPromptPart) and isinstance(part.content, str)
        ),
        "",
    )
    call = _choose(question.strip(), {tool.name for tool in info.function_tools})
    if call is None:
        return ModelResponse(parts=[TextPart(CANNOT)])
    name, arguments = call
    return ModelResponse(parts=[ToolCallPart(name, arguments)])


def offline_model() -> FunctionModel:
    return FunctionModel(plan, model_name="offline-planner")


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


def _answer(results: list[ToolReturnPart]) -> str:
    """Summarise the results of the last round of tool calls."""
    sentences = []
    for result in results:
        content = result.model_response_str()
        if result.outcome != "success":
            sentences.append(f"I could not complete that ({result.tool_name}: {content}).")
        elif result.tool_name == "calculator":
            sentences.append(f"The result is {content}.")
        elif result.tool_name == "clock":
            sentences.append(f"It is {content}.")
        else:
            sentences.append(content)
    return " ".join(sentences)
