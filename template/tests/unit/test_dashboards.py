"""The Grafana dashboards of deploy/monitoring: valid against the dashboard schema, and what
the ConfigMap of deploy/monitoring/kustomization.yaml ships.

The queries themselves are exercised against a real Prometheus by the template's own tests;
here: the structure Grafana needs, unique ids, panels that do not overlap, and every panel
selecting this service's series and one environment through the dashboard's variables.
"""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
SCHEMA = json.loads(Path(__file__).with_name("grafana-dashboard.schema.json").read_text())
KUSTOMIZATION = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
SHIPPED = KUSTOMIZATION["configMapGenerator"][0]["files"]


def load(name: str) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads((MONITORING / name).read_text(encoding="utf-8"))
    return dashboard


def test_every_dashboard_file_is_shipped_by_the_configmap() -> None:
    files = sorted(
        str(path.relative_to(MONITORING)) for path in MONITORING.glob("dashboards/*.json")
    )
    assert files == sorted(SHIPPED)
    assert KUSTOMIZATION["generatorOptions"]["labels"]["grafana_dashboard"] == "1"


@pytest.mark.parametrize("name", SHIPPED)
def test_the_dashboard_matches_the_schema(name: str) -> None:
    errors = sorted(Draft202012Validator(SCHEMA).iter_errors(load(name)), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


@pytest.mark.parametrize("name", SHIPPED)
def test_panels_have_unique_ids_and_do_not_overlap(name: str) -> None:
    panels = load(name)["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


@pytest.mark.parametrize("name", SHIPPED)
def test_every_query_selects_this_service_in_one_environment(name: str) -> None:
    """The service is a constant; the environment a choice (the namespace, or the
    `environment` label a batch's runs push), so staging and production never share a line."""
    dashboard = load(name)
    variables = [v for v in dashboard["templating"]["list"] if v["type"] != "datasource"]
    assert [v["type"] for v in variables] == ["constant", "query"]
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            for variable in variables:
                assert (
                    f'="${variable["name"]}"' in target["expr"]
                ), f"{panel['title']}: {target['expr']}"


def test_dashboard_uids_are_unique() -> None:
    uids = [load(name)["uid"] for name in SHIPPED]
    assert len(uids) == len(set(uids))
