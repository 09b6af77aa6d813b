"""Vector stores: where chunks and their embeddings live, searched by cosine similarity."""

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from .chunking import Chunk


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float  # cosine similarity: vectors are unit length, so a dot product


class VectorStore(Protocol):
    kind: str

    def replace(
        self, document_id: str, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]
    ) -> None:
        """Store a document's chunks, replacing what was stored for it (ingestion is idempotent)."""
        ...

    def search(self, vector: Sequence[float], k: int) -> list[Hit]:
        """The k chunks most similar to `vector`, best first."""
        ...

    def stats(self) -> tuple[int, int]:
        """(documents, chunks) stored."""
        ...


class InMemoryVectorStore:
    """Exact search over vectors held in the process: right for small corpora and tests."""

    kind = "memory"

    def __init__(self) -> None:
        self._documents: dict[str, list[tuple[Chunk, Sequence[float]]]] = {}
        self._lock = threading.Lock()

    def replace(
        self, document_id: str, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]
    ) -> None:
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        with self._lock:
            self._documents[document_id] = list(zip(chunks, vectors, strict=True))

    def search(self, vector: Sequence[float], k: int) -> list[Hit]:
        with self._lock:
            rows = [row for rows in self._documents.values() for row in rows]
        hits = [Hit(chunk, sum(a * b for a, b in zip(vector, v, strict=True))) for chunk, v in rows]
        hits.sort(key=lambda hit: (-hit.score, hit.chunk.document_id, hit.chunk.index))
        return hits[:k]

    def stats(self) -> tuple[int, int]:
        with self._lock:
            return len(self._documents), sum(len(rows) for rows in self._documents.values())
