"""Print the service's OpenAPI schema: `python -m <package>.openapi > tests/contract/openapi.json`.

The contract tests compare the live schema with that committed snapshot, so an API change
is always a visible, reviewed diff of the snapshot.
"""

import json
from typing import Any

from .app import create_app
from .settings import Settings


def schema() -> dict[str, Any]:
    """The OpenAPI document, without the version (which changes with every release)."""
    document = create_app(Settings()).openapi()
    document["info"].pop("version", None)
    return document


def main() -> None:
    print(json.dumps(schema(), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
