"""The example tools: safe to run, useful, and small enough to read in one sitting.

Each is a typed function wrapped in a pydantic-ai `Tool`: its signature is the JSON schema the
model sees, pydantic validates the model's arguments against it, and `ModelRetry` tells the
model what went wrong (an expected failure: bad input, nothing found).
"""

import ast
import json
import operator
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field
from pydantic_ai import ModelRetry, Tool

from ..llm.offline import words

KNOWLEDGE = Path(__file__).with_name("knowledge.json")


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


def calculate(expression: str) -> float | int:
    """Evaluate arithmetic by walking its syntax tree: no names, calls or attributes, ever."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as error:
        raise ModelRetry(f"not an arithmetic expression: {expression!r}") from error
    return _evaluate(tree.body)


def _evaluate(node: ast.expr) -> float | int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            raise ModelRetry("only numbers, parentheses and + - * / // % ** are allowed")
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        result: float | int = _UNARY[type(node.op)](_evaluate(node.operand))
        return result
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 100:
            raise ModelRetry("exponents above 100 are not allowed")
        try:
            result = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ModelRetry("division by zero") from None
        return result
    raise ModelRetry("only numbers, parentheses and + - * / // % ** are allowed")


def _format(number: float | int) -> str:
    if isinstance(number, float) and number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return f"{number:.10g}" if isinstance(number, float) else str(number)


Expression = Annotated[
    str, Field(min_length=1, max_length=200, description="Arithmetic such as '(17 * 23) + 4 / 2'")
]
TimeZone = Annotated[str, Field(description="IANA time zone such as 'Europe/Rome'")]
Term = Annotated[str, Field(min_length=1, max_length=200, description="The term to look up")]


def calculator() -> Tool[Any]:
    def run(expression: Expression) -> str:
        return _format(calculate(expression))

    return Tool(
        run,
        name="calculator",
        description="Evaluate an arithmetic expression exactly. Use it for any computation.",
    )


def clock(now: Callable[[ZoneInfo], datetime] | None = None) -> Tool[Any]:
    """The current date and time; `now` is injectable for tests."""
    current = now or (lambda zone: datetime.now(zone))

    def run(timezone: TimeZone = "UTC") -> str:
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ModelRetry(
                f"unknown time zone {timezone!r}: use an IANA name such as 'Europe/Rome'"
            ) from None
        moment = current(zone)
        return f"{moment:%A %d %B %Y, %H:%M} in {timezone} ({moment.isoformat()})"

    return Tool(run, name="clock", description="The current date, weekday and time in a time zone.")


def load_glossary(path: Path = KNOWLEDGE) -> dict[str, str]:
    entries = json.loads(path.read_text(encoding="utf-8"))
    return {str(entry["term"]): str(entry["definition"]) for entry in entries}


def lookup(glossary: dict[str, str] | None = None) -> Tool[Any]:
    """Look a term up in the team's glossary (`knowledge.json`)."""
    entries = glossary if glossary is not None else load_glossary()

    def run(query: Term) -> str:
        wanted = set(words(query))
        best = max(entries, key=lambda term: len(wanted & set(words(term))), default=None)
        if best is None or not wanted & set(words(best)):
            raise ModelRetry(f"no entry for {query!r} in the glossary")
        return f"{best}: {entries[best]}"

    return Tool(
        run,
        name="lookup",
        description="Look a term up in the team's glossary of delivery and operations terms.",
    )
