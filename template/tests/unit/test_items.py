import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.unit


def test_create_then_read_an_item(client: TestClient) -> None:
    created = client.post("/items", json={"name": "widget", "description": "a small part"})
    assert created.status_code == 201
    item = created.json()
    assert item["name"] == "widget"
    fetched = client.get(f"/items/{item['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == item


def test_list_items_pages_in_id_order(client: TestClient) -> None:
    for name in ("a", "b", "c"):
        client.post("/items", json={"name": name})
    names = [item["name"] for item in client.get("/items", params={"limit": 2}).json()]
    assert names == ["a", "b"]
    rest = client.get("/items", params={"limit": 2, "offset": 2}).json()
    assert [item["name"] for item in rest] == ["c"]


def test_unknown_item_is_404(client: TestClient) -> None:
    response = client.get("/items/999")
    assert response.status_code == 404
    assert response.json()["detail"] == "item 999 not found"


def test_duplicate_name_is_409(client: TestClient) -> None:
    client.post("/items", json={"name": "twice"})
    response = client.post("/items", json={"name": "twice"})
    assert response.status_code == 409


@pytest.mark.parametrize("payload", [{}, {"name": ""}, {"name": "x" * 201}])
def test_invalid_payload_is_422(client: TestClient, payload: dict[str, str]) -> None:
    assert client.post("/items", json=payload).status_code == 422
