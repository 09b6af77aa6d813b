import json
import logging

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.unit


def test_access_log_is_json_with_request_id(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    client.get("/healthz", headers={"X-Request-ID": "req-42"})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    access = [line for line in lines if line["logger"] == "access"]
    assert access, lines
    entry = access[-1]
    assert entry["request_id"] == "req-42"
    assert entry["route"] == "/healthz"
    assert entry["status"] == 200
    assert entry["level"] == "info"
    assert entry["duration_ms"] >= 0


def test_exceptions_are_logged_as_one_json_object(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("test").exception("failed", extra={"order": 7})
    entry = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert entry["message"] == "failed"
    assert entry["order"] == 7
    assert "ValueError: boom" in entry["exception"]
