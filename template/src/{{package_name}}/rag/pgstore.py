"""A PostgreSQL vector store: exact search on plain PostgreSQL, pgvector's index when present.

Chunks live in the `rag_chunks` table (migration 0002) with their embedding as a
`double precision[]`: the similarity is computed in SQL over every row, which needs no
extension and is exact (fine up to some 100 000 chunks). When the pgvector extension is
installed, migration 0003 adds an `embedding_vector vector(N)` column with an HNSW index;
this store notices the column and then searches with pgvector's `<=>` operator instead.
"""

import logging
from collections.abc import Sequence

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
    delete,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

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

# Exact: the dot product of unit vectors (= cosine similarity) over every stored chunk.
EXACT_SEARCH = text(
    "SELECT document_id, chunk_index, title, source, text,"
    " (SELECT sum(a * b) FROM unnest(embedding, CAST(:query AS double precision[])) AS pair(a, b))"
    " AS score FROM rag_chunks ORDER BY score DESC, document_id, chunk_index LIMIT :k"
)
# pgvector: approximate nearest neighbours through the HNSW index on embedding_vector.
PGVECTOR_SEARCH = text(
    "SELECT document_id, chunk_index, title, source, text,"
    " 1 - (embedding_vector <=> CAST(:query AS vector)) AS score"
    " FROM rag_chunks ORDER BY embedding_vector <=> CAST(:query AS vector) LIMIT :k"
)
HAS_VECTOR_COLUMN = text(
    "SELECT EXISTS (SELECT 1 FROM information_schema.columns"
    " WHERE table_name = 'rag_chunks' AND column_name = 'embedding_vector')"
)


class PostgresVectorStore:
    kind = "postgres"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pgvector: bool | None = None

    @property
    def search_mode(self) -> str:
        """ "pgvector" when migration 0003 found the extension, else "exact"."""
        if self._pgvector is None:
            with self.engine.connect() as connection:
                self._pgvector = bool(connection.execute(HAS_VECTOR_COLUMN).scalar())
            log.info("vector search mode", extra={"mode": self.search_mode})
        return "pgvector" if self._pgvector else "exact"

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
        with self.engine.begin() as connection:
            connection.execute(delete(rag_chunks).where(rag_chunks.c.document_id == document_id))
            if rows:
                connection.execute(insert(rag_chunks), rows)
                if self.search_mode == "pgvector":
                    connection.execute(
                        text(
                            "UPDATE rag_chunks SET embedding_vector = CAST(embedding AS vector)"
                            " WHERE document_id = :document_id"
                        ),
                        {"document_id": document_id},
                    )

    def search(self, vector: Sequence[float], k: int) -> list[Hit]:
        query = PGVECTOR_SEARCH if self.search_mode == "pgvector" else EXACT_SEARCH
        query = query.bindparams(bindparam("query", type_=ARRAY(Float(precision=53))))
        with self.engine.connect() as connection:
            rows = connection.execute(query, {"query": list(vector), "k": k}).all()
        return [
            Hit(Chunk(row.document_id, row.chunk_index, row.text, row.title, row.source), row.score)
            for row in rows
        ]

    def stats(self) -> tuple[int, int]:
        query = select(func.count(rag_chunks.c.document_id.distinct()), func.count())
        with self.engine.connect() as connection:
            documents, chunks = connection.execute(query.select_from(rag_chunks)).one()
        return int(documents), int(chunks)
