"""Database engine, sessions and the readiness check."""

import logging
from collections.abc import Iterator

from fastapi import Request
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from .settings import Settings

log = logging.getLogger(__name__)


def make_engine(settings: Settings) -> Engine:
    """An engine for DATABASE_URL (SQLite in memory is accepted for unit tests)."""
    if settings.database_url.startswith("sqlite"):
        return create_engine(
            settings.database_url,
            connect_args={"check_same_thread": False},
            poolclass=StaticPool,
        )
    return create_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 5},
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def ping(engine: Engine) -> str:
    """'ok' when the database answers a trivial query, else a short reason."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        log.warning("database not ready", extra={"error": type(error).__name__})
        return f"error: {type(error).__name__}"
    return "ok"


def get_session(request: Request) -> Iterator[Session]:
    """FastAPI dependency: one session per request, closed afterwards."""
    sessions: sessionmaker[Session] = request.app.state.sessions
    with sessions() as session:
        yield session
