"""A tool over the service's own data: search the items table (PostgreSQL)."""

import json
from typing import Annotated, Any

from pydantic import Field
from pydantic_ai import ModelRetry, Tool
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from ..models import Item

Query = Annotated[
    str, Field(min_length=1, max_length=200, description="Text in the name or description")
]
Limit = Annotated[int, Field(ge=1, le=20, description="At most this many items")]


def search_items(sessions: sessionmaker[Session]) -> Tool[Any]:
    """Items whose name or description contains the query (read-only)."""

    def run(query: Query, limit: Limit = 5) -> str:
        pattern = f"%{query}%"
        statement = (
            select(Item)
            .where(or_(Item.name.ilike(pattern), Item.description.ilike(pattern)))
            .order_by(Item.id)
            .limit(limit)
        )
        with sessions() as session:
            found = [
                {"id": item.id, "name": item.name, "description": item.description}
                for item in session.scalars(statement)
            ]
        if not found:
            raise ModelRetry(f"no item matches {query!r}")
        return json.dumps(found)

    return Tool(
        run,
        name="search_items",
        description="Search the items stored by this service by name or description.",
    )
