"""Ingestion and question answering, with a span and metrics for every step."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from ..llm.factory import build_chat_model, build_embedder
from ..llm.provider import ChatModel, Embedder, Usage
from ..llm.telemetry import LLMMetrics, step
from ..settings import Settings
from .answer import PROMPT_VERSION, build_messages, cited_numbers, extractive_answer
from .chunking import Document, chunk_document, load_documents
from .store import Hit, InMemoryVectorStore, VectorStore

log = logging.getLogger(__name__)

CORPUS = Path(__file__).with_name("corpus")


@dataclass(frozen=True)
class Citation:
    number: int
    hit: Hit


@dataclass(frozen=True)
class Answer:
    text: str
    citations: list[Citation]
    hits: list[Hit]
    model: str
    usage: Usage


class RagService:
    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        model: ChatModel,
        metrics: LLMMetrics,
        chunk_size: int,
        chunk_overlap: int,
        top_k: int,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.model = model
        self.metrics = metrics
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.top_k = top_k

    def ingest(self, documents: Sequence[Document]) -> int:
        """Chunk, embed and store documents (replacing earlier versions); the chunk count."""
        total = 0
        for document in documents:
            with step(self.metrics, "ingest", "chunk_embed_store") as current:
                current.span.set_attribute("rag.document_id", document.id)
                chunks = chunk_document(document, self.chunk_size, self.chunk_overlap)
                vectors = self.embedder.embed([c.text for c in chunks]).vectors if chunks else []
                self.store.replace(document.id, chunks, vectors)
                current.span.set_attribute("rag.chunks", len(chunks))
            total += len(chunks)
        log.info("ingested", extra={"documents": len(documents), "chunks": total})
        return total

    def ingest_directory_if_empty(self, directory: Path | None) -> None:
        """At start-up: load the document directory (the sample corpus) into an empty store."""
        if self.store.stats()[1] > 0:
            return
        self.ingest(load_documents(directory or CORPUS))

    def retrieve(self, question: str, k: int | None = None) -> list[Hit]:
        k = k or self.top_k
        query = self.embedder.embed([question]).vectors[0]
        with step(self.metrics, "retrieval", self.store.kind) as current:
            hits = self.store.search(query, k)
            current.span.set_attribute("rag.top_k", k)
            current.span.set_attribute("rag.hits", len(hits))
            if hits:
                current.span.set_attribute("rag.best_score", hits[0].score)
        return hits

    def answer(self, question: str, k: int | None = None) -> Answer:
        hits = self.retrieve(question, k)
        completion = self.model.complete(build_messages(question, hits))
        text = completion.message.content.strip()
        citations = [
            Citation(number, hits[number - 1])
            for number in cited_numbers(text)
            if 0 < number <= len(hits)
        ]
        return Answer(text, citations, hits, completion.model, completion.usage)

    @property
    def prompt_version(self) -> str:
        return PROMPT_VERSION


def build_service(
    settings: Settings, registry: CollectorRegistry, store: VectorStore | None = None
) -> RagService:
    """The service the settings describe: model provider and embedder (in-process store by default)."""
    metrics = LLMMetrics(registry)
    return RagService(
        store=store or InMemoryVectorStore(),
        embedder=build_embedder(settings, metrics, settings.rag_embedding_dimensions),
        model=build_chat_model(settings, metrics, extractive_answer, "offline-extractive"),
        metrics=metrics,
        chunk_size=settings.rag_chunk_size,
        chunk_overlap=settings.rag_chunk_overlap,
        top_k=settings.rag_top_k,
    )
