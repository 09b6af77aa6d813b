"""Create the rag_chunks table: chunks and their embeddings, searched exactly.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain array of floats: exact search works on any PostgreSQL, no extension needed.
    # (SQLite, used by local e2e runs without PostgreSQL, stores it as JSON and is never
    # searched: the service then uses its in-process store.)
    embedding = postgresql.ARRAY(sa.Float(precision=53)).with_variant(sa.JSON(), "sqlite")
    op.create_table(
        "rag_chunks",
        sa.Column("document_id", sa.String(length=200), primary_key=True),
        sa.Column("chunk_index", sa.Integer(), primary_key=True),
        sa.Column("title", sa.Text(), nullable=False, server_default=""),
        sa.Column("source", sa.Text(), nullable=False, server_default=""),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("embedding", embedding, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rag_chunks")
