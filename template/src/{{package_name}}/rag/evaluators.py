"""The RAG evaluation on pydantic-evals: golden questions as cases, retrieval and groundedness
as evaluators (rag/evaluate.py runs them and gates on their averages).

- `Retrieval`: hit (an expected document is among the top-k chunks), recall@k (the share of
  expected documents retrieved) and the reciprocal rank of the first expected document.
- `Groundedness`: the share of answer sentences the passages they cite support. A sentence is
  supported when it cites at least one passage that exists, and the cited passages contain
  every number of the sentence, its negations, at least 70% of its content words and at
  least half of its word pairs (so a claim stitched from scattered words, a changed figure
  or a dropped "not" is caught). An honest "I don't know" is grounded. Each unsupported
  sentence is reported with the reason.
"""

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from pydantic_evals import Case, Dataset
from pydantic_evals.evaluators import EvaluationReason, Evaluator, EvaluatorContext

from .answer import CITATION, NO_ANSWER, SENTENCE

TERM = re.compile(r"\d+(?:[.,]\d+)*|[a-z]+(?:'[a-z]+)?")
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
STOPWORDS = frozenset(
    TERM.findall(
        "a an and are as at be by can do does for from has have how i in is it its of on or that "
        "the their then there this to was were what when where which who why will with you your"
    )
)
NEGATIONS = frozenset(
    TERM.findall("no not never none nothing without cannot can't don't doesn't isn't won't")
)
MIN_WORDS, MIN_PAIRS = 0.7, 0.5


@dataclass(frozen=True)
class Expected:
    """What a golden question expects (the case's metadata)."""

    documents: list[str]


@dataclass(frozen=True)
class RagOutput:
    """What the task returns for a question: the answer and the passages it was given."""

    answer: str
    passages: list[str]  # in prompt order: [1] is passages[0]
    retrieved_documents: list[str]  # distinct, best first


def load_golden(path: Path) -> Dataset[str, RagOutput, Expected]:
    """The golden questions of a JSONL file (`question`, `expected_documents`) as a dataset."""
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            question = str(row["question"])
            documents = [str(document) for document in row["expected_documents"]]
        except (ValueError, KeyError, TypeError) as error:
            raise SystemExit(
                f"{path}:{number}: expected a JSON object with 'question' (text) and "
                f"'expected_documents' (list of document ids): {error!r}"
            ) from error
        if not documents:
            raise SystemExit(f"{path}:{number}: expected_documents is empty")
        cases.append(
            Case(name=f"{path.name}:{number}", inputs=question, metadata=Expected(documents))
        )
    if not cases:
        raise SystemExit(f"{path} holds no questions")
    return Dataset(name=path.stem, cases=cases, evaluators=[Retrieval(), Groundedness()])


@dataclass
class Retrieval(Evaluator[str, RagOutput, Expected]):
    def evaluate(self, ctx: EvaluatorContext[str, RagOutput, Expected]) -> dict[str, float]:
        expected = set(ctx.metadata.documents if ctx.metadata else [])
        retrieved = ctx.output.retrieved_documents
        ranks = [rank for rank, doc in enumerate(retrieved, start=1) if doc in expected]
        return {
            "hit": float(bool(ranks)),
            "recall_at_k": (
                len(expected.intersection(retrieved)) / len(expected) if expected else 0.0
            ),
            "reciprocal_rank": 1 / ranks[0] if ranks else 0.0,
        }


@dataclass
class Groundedness(Evaluator[str, RagOutput, Expected]):
    def evaluate(
        self, ctx: EvaluatorContext[str, RagOutput, Expected]
    ) -> dict[str, EvaluationReason]:
        share, unsupported = groundedness(ctx.output.answer, ctx.output.passages)
        reason = "; ".join(unsupported) if unsupported else None
        return {"groundedness": EvaluationReason(value=share, reason=reason)}


def groundedness(answer: str, passages: Sequence[str]) -> tuple[float, list[str]]:
    """The share of supported sentences, and why each unsupported one is not."""
    if answer.strip() == NO_ANSWER:
        return 1.0, []
    sentences = [s.strip() for s in SENTENCE.split(answer.strip()) if terms(CITATION.sub("", s))]
    if not sentences:
        return 0.0, ["the answer has no sentence"]
    unsupported = []
    for sentence in sentences:
        problem = _unsupported(sentence, passages)
        if problem:
            unsupported.append(f"{sentence!r}: {problem}")
    return 1 - len(unsupported) / len(sentences), unsupported


def _unsupported(sentence: str, passages: Sequence[str]) -> str | None:
    """Why the cited passages do not support the sentence; None when they do."""
    cited = sorted({int(number) for number in CITATION.findall(sentence)})
    if not cited:
        return "cites no passage"
    missing = [number for number in cited if not 0 < number <= len(passages)]
    if missing:
        return f"cites {missing} but the context has {len(passages)} passages"
    claim = terms(CITATION.sub("", sentence))
    sources = [terms(passages[number - 1]) for number in cited]
    source = {term for passage in sources for term in passage}
    figures = [term for term in claim if NUMBER.fullmatch(term) and term not in source]
    if figures:
        return f"the figures {figures} are not in the cited passages"
    negations = [term for term in claim if term in NEGATIONS and term not in source]
    if negations:
        return f"the negations {negations} are not in the cited passages"
    content = [term for term in claim if term not in STOPWORDS]
    found = sum(term in source for term in content)
    if content and found < MIN_WORDS * len(content):
        return f"{found} of {len(content)} content words are in the cited passages"
    pairs = list(pairwise(claim))
    source_pairs = {pair for passage in sources for pair in pairwise(passage)}
    supported_pairs = sum(pair in source_pairs for pair in pairs)
    if pairs and supported_pairs < MIN_PAIRS * len(pairs):
        return f"{supported_pairs} of {len(pairs)} word pairs are in the cited passages"
    return None


def terms(text: str) -> list[str]:
    """Lower-case words and numbers, in order."""
    return TERM.findall(text.lower())
