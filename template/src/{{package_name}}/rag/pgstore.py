"""A PostgreSQL vector store: pgvector's HNSW index when present, exact search otherwise.

Chunks live in the `rag_chunks` table (migration 0002) with their embedding as a
`double precision[]`. When the server has the pgvector extension, migration 0003 adds an
`embedding_vector vector(N)` column with an HNSW index for cosine distance; this store
notices the column, writes the vectors there too (`pgvector.sqlalchemy.Vector`) and orders
by pgvector's cosine distance (`<=>`), which the index serves. Without the extension the
similarity is computed in SQL over every row: exact, no extension needed, fine up to some
100 000 chunks.
"""

import logging
from collections.abc import Sequence
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    column,
    delete,
    func,
    insert,
    select,
    table,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import Select, TableClause, TextClause

from .chunking import Chunk
from .store import Hit

log = logging.getLogger(__name__)

metadata = MetaData()

rag_chunks = Table(
    "rag_chunks",
    metadata,
    Column("document_id", String(200), primary_key=True),
    Column("chunk_index", Integer, primary_key=True),
    Column("title", Text, nullable=False, server_default=""),
    Column("source", Text, nullable=False, server_default=""),
    Column("text", Text, nullable=False),
    Column("embedding", ARRAY(Float(precision=53)), nullable=False),
)

# The same table with migration 0003's column. Not in `metadata`: the column exists only on
# servers with pgvector, so autogenerate must not expect it everywhere.
rag_chunks_pgvector = table(
    "rag_chunks",
    *(column(c.name, c.type) for c in rag_chunks.columns),
    column("embedding_vector", Vector()),
)

# Exact: the dot product of unit vectors (= cosine similarity) over every stored chunk.
EXACT_SEARCH = text(
    "SELECT document_id, chunk_index, title, source, text,"
    " (SELECT sum(a * b) FROM unnest(embedding, CAST(:query AS double precision[])) AS pair(a, b))"
    " AS score FROM rag_chunks ORDER BY score DESC, document_id, chunk_index LIMIT :k"
)
# The width of migration 0003's `vector(N)` column (its type modifier); no row: no column.
VECTOR_COLUMN_DIMENSIONS = text(
    "SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass('rag_chunks')"
    " AND attname = 'embedding_vector' AND NOT attisdropped"
)


class PostgresVectorStore:
    kind = "postgres"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # The vector column's width: 0 when there is none, -1 when it has no fixed width.
        self._dimensions: int | None = None

    @property
    def search_mode(self) -> str:
        """ "pgvector" when migration 0003 found the extension, else "exact"."""
        if self._dimensions is None:
            with self.engine.connect() as connection:
                width = connection.execute(VECTOR_COLUMN_DIMENSIONS).scalar()
            self._dimensions = 0 if width is None else int(width)
            log.info("vector search mode", extra={"mode": self.search_mode})
        return "pgvector" if self._dimensions else "exact"

    def _check_width(self, vector: Sequence[float]) -> None:
        if self.search_mode == "pgvector" and 0 < (self._dimensions or 0) != len(vector):
            raise ValueError(
                f"the embeddings have {len(vector)} dimensions but rag_chunks.embedding_vector "
                f"holds {self._dimensions} (migration 0003 ran with RAG_EMBEDDING_DIMENSIONS="
                f"{self._dimensions}): set it back, or empty rag_chunks and run "
                "`alembic downgrade 0002 && alembic upgrade head` before ingesting again"
            )

    def replace(
        self, document_id: str, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]
    ) -> None:
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        rows = [
            {
                "document_id": chunk.document_id,
                "chunk_index": chunk.index,
                "title": chunk.title,
                "source": chunk.source,
                "text": chunk.text,
                "embedding": list(vector),
            }
            for chunk, vector in zip(chunks, vectors, strict=True)
        ]
        for vector in vectors[:1]:
            self._check_width(vector)
        target: TableClause = rag_chunks
        if self.search_mode == "pgvector":
            target = rag_chunks_pgvector
            rows = [{**row, "embedding_vector": row["embedding"]} for row in rows]
        with self.engine.begin() as connection:
            connection.execute(delete(rag_chunks).where(rag_chunks.c.document_id == document_id))
            if rows:
                connection.execute(insert(target), rows)

    def search(self, vector: Sequence[float], k: int) -> list[Hit]:
        with self.engine.connect() as connection:
            rows = connection.execute(self.search_query(vector, k)).all()
        return [
            Hit(Chunk(row.document_id, row.chunk_index, row.text, row.title, row.source), row.score)
            for row in rows
        ]

    def search_query(self, vector: Sequence[float], k: int) -> Select[Any] | TextClause:
        """The k nearest chunks by cosine similarity, best first."""
        self._check_width(vector)
        if self.search_mode == "exact":
            query = bindparam("query", list(vector), type_=ARRAY(Float(precision=53)))
            return EXACT_SEARCH.bindparams(query, k=k)
        # pgvector: approximate nearest neighbours through the HNSW index. The index serves
        # exactly `ORDER BY embedding_vector <=> :query LIMIT :k`, so the order stays that.
        chunks = rag_chunks_pgvector.c
        distance = chunks.embedding_vector.cosine_distance(list(vector))
        return (
            select(
                chunks.document_id,
                chunks.chunk_index,
                chunks.title,
                chunks.source,
                chunks.text,
                (1 - distance).label("score"),
            )
            .order_by(distance)
            .limit(k)
        )

    def stats(self) -> tuple[int, int]:
        query = select(func.count(rag_chunks.c.document_id.distinct()), func.count())
        with self.engine.connect() as connection:
            documents, chunks = connection.execute(query.select_from(rag_chunks)).one()
        return int(documents), int(chunks)
