import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.unit


def _sample(body: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition, 0 when absent."""
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    for line in body.splitlines():
        if line.startswith(name + "{") and all(part in line for part in wanted.split(",")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_requests_are_counted_by_route_and_status(client: TestClient) -> None:
    for _ in range(3):
        client.get("/healthz")
    client.get("/does-not-exist")
    body = client.get("/metrics").text
    assert _sample(body, "http_requests_total", route="/healthz", status="200") == 3
    assert _sample(body, "http_requests_total", route="unmatched", status="404") == 1
    assert _sample(body, "http_request_errors_total", route="unmatched", status="404") == 1
    assert _sample(body, "http_request_errors_total", route="/healthz", status="200") == 0


def test_latency_histogram_is_exposed(client: TestClient) -> None:
    client.get("/healthz")
    body = client.get("/metrics").text
    assert "# TYPE http_request_duration_seconds histogram" in body
    count = _sample(body, "http_request_duration_seconds_count", route="/healthz", status="200")
    assert count == 1
    assert "process_resident_memory_bytes" in body
    assert "process_cpu_seconds_total" in body


def test_metrics_endpoint_does_not_count_itself(client: TestClient) -> None:
    client.get("/metrics")
    body = client.get("/metrics").text
    assert 'route="/metrics"' not in body


def test_label_values_stay_bounded(client: TestClient) -> None:
    client.get("/healthz/../../etc/passwd")
    client.get("/random-path-1")
    client.request("PURGE-EVERYTHING", "/healthz")
    body = client.get("/metrics").text
    assert _sample(body, "http_requests_total", route="unmatched", status="404") == 2
    assert _sample(body, "http_requests_total", method="other", route="/healthz") == 1
    assert "random-path" not in body
    assert "PURGE" not in body
