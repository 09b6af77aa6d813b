"""The service types and their capabilities, read from service-types.yml: the one reader of it.

service-types.yml is the single list of service types (one row each). The template reads it
through copier.yml; every tool of this repository reads it through this module: the tests
(their matrices and the files a project holds), dev/render_diff.py, the docs generators and
the checks of Backstage's form and of the CI matrix.

    from dev import service_types
    service_types.names()                    # ['microservice', 'rag', 'agent', 'data-pipeline']
    service_types.having("serves_http")      # the types whose serves_http is true
    service_types.get("rag").uses_llm        # True
    service_types.of({"service_type": "rag"})  # the row of an answer set (copier's default type without one)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
FILE = "service-types.yml"
_FIELD = re.compile(r"^#\s{3}(\w+)\s{2,}(.*)$")
_CONTINUED = re.compile(r"^#\s{4,}(\S.*)$")


@dataclass(frozen=True)
class ServiceType:
    """One row: the type's name and its fields (`summary`, `subpackage`, the capabilities),
    each readable as an attribute (`kind.serves_http`) or by name (`kind["serves_http"]`)."""

    name: str
    row: Mapping[str, Any]

    def __getattr__(self, field: str) -> Any:
        if field.startswith("_") or field == "row":  # copy, pickle: no row yet
            raise AttributeError(field)
        try:
            return self.row[field]
        except KeyError:
            raise AttributeError(f"service type {self.name!r} has no field {field!r}") from None

    def __getitem__(self, field: str) -> Any:
        return self.row[field]

    def has(self, capability: str) -> bool:
        """Whether the capability is true (a non-empty value) for this type; an unknown
        capability is an error, not a silent false."""
        if capability not in self.row:
            raise KeyError(f"{capability!r} is not a field of {FILE} (service type {self.name!r})")
        return bool(self.row[capability])


@cache
def _rows(root: Path) -> tuple[ServiceType, ...]:
    rows = yaml.safe_load((root / FILE).read_text(encoding="utf-8"))
    return tuple(ServiceType(name, dict(row)) for name, row in rows.items())


def load(root: Path = ROOT) -> dict[str, ServiceType]:
    """The rows of service-types.yml, in its order, keyed by the type's name."""
    return {kind.name: kind for kind in _rows(root)}


def names(root: Path = ROOT) -> list[str]:
    """Every service type, in the order of service-types.yml."""
    return list(load(root))


def get(name: str, root: Path = ROOT) -> ServiceType:
    types = load(root)
    if name not in types:
        raise KeyError(f"unknown service type {name!r}; {FILE} has {', '.join(types)}")
    return types[name]


def having(capability: str, value: bool = True, root: Path = ROOT) -> list[str]:
    """The service types whose capability is true (value=False: those whose it is false)."""
    return [kind.name for kind in load(root).values() if kind.has(capability) is value]


@cache
def default_type(root: Path = ROOT) -> str:
    """The service type a project gets when the answers name none (copier.yml's default)."""
    config = yaml.safe_load((root / "copier.yml").read_text(encoding="utf-8"))
    return str(config["service_type"]["default"])


def of(answers: Mapping[str, Any], root: Path = ROOT) -> ServiceType:
    """The row of an answer set: its service_type's, or the default type's."""
    return get(answers.get("service_type") or default_type(root), root)


def fields(root: Path = ROOT) -> dict[str, str]:
    """Every field of a row and what it means, in the order the header comment of
    service-types.yml explains them."""
    meanings: dict[str, str] = {}
    last = None
    for line in (root / FILE).read_text(encoding="utf-8").splitlines():
        if match := _FIELD.match(line):
            last = match.group(1)
            meanings[last] = match.group(2).strip()
        elif last and (match := _CONTINUED.match(line)):
            meanings[last] += " " + match.group(1).strip()
        elif not line.startswith("#"):
            last = None
    return meanings


def capability_names(root: Path = ROOT) -> list[str]:
    """The boolean fields (serves_http, uses_llm, ...): what copier.yml computes one answer for."""
    return [name for name in fields(root) if name not in ("summary", "subpackage")]
