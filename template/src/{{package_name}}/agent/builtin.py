"""The example tools: safe to run, useful, and small enough to read in one sitting."""

import ast
import json
import operator
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field

from ..llm.offline import words
from .tools import Tool, ToolError

KNOWLEDGE = Path(__file__).with_name("knowledge.json")


class CalculatorArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expression: str = Field(
        min_length=1, max_length=200, description="Arithmetic such as '(17 * 23) + 4 / 2'"
    )


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
        raise ToolError(f"not an arithmetic expression: {expression!r}") from error
    return _evaluate(tree.body)


def _evaluate(node: ast.expr) -> float | int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            raise ToolError("only numbers, parentheses and + - * / // % ** are allowed")
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        result: float | int = _UNARY[type(node.op)](_evaluate(node.operand))
        return result
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 100:
            raise ToolError("exponents above 100 are not allowed")
        try:
            result = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ToolError("division by zero") from None
        return result
    raise ToolError("only numbers, parentheses and + - * / // % ** are allowed")


def _format(number: float | int) -> str:
    if isinstance(number, float) and number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return f"{number:.10g}" if isinstance(number, float) else str(number)


def calculator() -> Tool[CalculatorArgs]:
    return Tool(
        name="calculator",
        description="Evaluate an arithmetic expression exactly. Use it for any computation.",
        args=CalculatorArgs,
        run=lambda args: _format(calculate(args.expression)),
    )


class ClockArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: str = Field(default="UTC", description="IANA time zone such as 'Europe/Rome'")


def clock(now: Callable[[ZoneInfo], datetime] | None = None) -> Tool[ClockArgs]:
    """The current date and time; `now` is injectable for tests."""
    current = now or (lambda zone: datetime.now(zone))

    def run(args: ClockArgs) -> str:
        try:
            zone = ZoneInfo(args.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ToolError(
                f"unknown time zone {args.timezone!r}: use an IANA name such as 'Europe/Rome'"
            ) from None
        moment = current(zone)
        return f"{moment:%A %d %B %Y, %H:%M} in {args.timezone} ({moment.isoformat()})"

    return Tool(
        name="clock",
        description="The current date, weekday and time in a time zone.",
        args=ClockArgs,
        run=run,
    )


class LookupArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=200, description="The term to look up")


def load_glossary(path: Path = KNOWLEDGE) -> dict[str, str]:
    entries = json.loads(path.read_text(encoding="utf-8"))
    return {str(entry["term"]): str(entry["definition"]) for entry in entries}


def lookup(glossary: dict[str, str] | None = None) -> Tool[LookupArgs]:
    """Look a term up in the team's glossary (`knowledge.json`)."""
    entries = glossary if glossary is not None else load_glossary()

    def run(args: LookupArgs) -> str:
        wanted = set(words(args.query))
        best = max(entries, key=lambda term: len(wanted & set(words(term))), default=None)
        if best is None or not wanted & set(words(best)):
            raise ToolError(f"no entry for {args.query!r} in the glossary")
        return f"{best}: {entries[best]}"

    return Tool(
        name="lookup",
        description="Look a term up in the team's glossary of delivery and operations terms.",
        args=LookupArgs,
        run=run,
    )
