"""The prompt (versioned), the offline extractive model, and citations in answers."""

import hashlib
import re
from collections.abc import Sequence

from ..llm.offline import words
from ..llm.provider import Message, ToolSpec
from .store import Hit

SYSTEM_PROMPT = """\
You answer questions using only the numbered context passages.
Cite the passages each sentence relies on by number, like [1] or [2][3].
If the passages do not contain the answer, reply exactly: I don't know based on the documents."""

NO_ANSWER = "I don't know based on the documents."

# Recorded with every answer and evaluation run: a changed prompt is a new version.
PROMPT_VERSION = hashlib.sha256(SYSTEM_PROMPT.encode()).hexdigest()[:12]

PASSAGE = re.compile(r"^\[(\d+)\] \((?:[^)]*)\) (.*)$", re.MULTILINE)
CITATION = re.compile(r"\[(\d+)\]")
SENTENCE = re.compile(r"(?<=[.!?])\s+")


def build_messages(question: str, hits: Sequence[Hit]) -> list[Message]:
    passages = "\n".join(
        f"[{number}] ({hit.chunk.title}) {hit.chunk.text}"
        for number, hit in enumerate(hits, start=1)
    )
    prompt = f"Context:\n{passages}\n\nQuestion: {question}"
    return [Message("system", SYSTEM_PROMPT), Message("user", prompt)]


def extractive_answer(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Message:
    """The offline model: the passage sentences sharing most words with the question, cited."""
    prompt = messages[-1].content
    question = set(words(prompt.rsplit("Question:", 1)[-1]))
    scored: list[tuple[float, int, str]] = []
    for match in PASSAGE.finditer(prompt):
        number, passage = int(match.group(1)), match.group(2)
        for sentence in SENTENCE.split(passage):
            shared = question & set(words(sentence))
            if question and len(shared) / len(question) >= 0.25:
                scored.append((len(shared) / len(question), number, sentence.strip()))
    if not scored:
        return Message("assistant", NO_ANSWER)
    scored.sort(key=lambda item: (-item[0], item[1]))
    best = [item for item in scored[:2] if item[0] >= 0.6 * scored[0][0]]
    return Message("assistant", " ".join(_cited(sentence, number) for _, number, sentence in best))


def _cited(sentence: str, number: int) -> str:
    body = sentence.rstrip(".!?")
    return f"{body} [{number}]."


def cited_numbers(answer: str) -> list[int]:
    """Passage numbers cited in an answer, in order of first citation."""
    numbers: list[int] = []
    for match in CITATION.finditer(answer):
        number = int(match.group(1))
        if number not in numbers:
            numbers.append(number)
    return numbers
