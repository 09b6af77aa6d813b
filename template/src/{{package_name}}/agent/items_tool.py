"""A tool over the service's own data: search the items table (PostgreSQL)."""

import json

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from ..models import Item
from .tools import Tool, ToolError


class SearchItemsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=200, description="Text in the name or description")
    limit: int = Field(default=5, ge=1, le=20)


def search_items(sessions: sessionmaker[Session]) -> Tool[SearchItemsArgs]:
    """Items whose name or description contains the query (read-only)."""

    def run(args: SearchItemsArgs) -> str:
        pattern = f"%{args.query}%"
        query = (
            select(Item)
            .where(or_(Item.name.ilike(pattern), Item.description.ilike(pattern)))
            .order_by(Item.id)
            .limit(args.limit)
        )
        with sessions() as session:
            found = [
                {"id": item.id, "name": item.name, "description": item.description}
                for item in session.scalars(query)
            ]
        if not found:
            raise ToolError(f"no item matches {args.query!r}")
        return json.dumps(found)

    return Tool(
        name="search_items",
        description="Search the items stored by this service by name or description.",
        args=SearchItemsArgs,
        run=run,
    )
