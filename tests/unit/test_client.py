"""The agents' client: what it sends when its token expired between two calls."""

from __future__ import annotations

import httpx

from hms_management.client import ManagementClient


def client_against(handler) -> ManagementClient:
    client = ManagementClient("http://airflow.test", "agent", "pw")
    client._airflow._http = httpx.Client(base_url="http://airflow.test", transport=httpx.MockTransport(handler))
    return client


def test_a_submit_retried_after_a_token_refresh_keeps_its_content_type():
    tokens = iter(["expired", "fresh"])
    seen: list[tuple[str, str | None]] = []

    def airflow(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/token":
            return httpx.Response(201, json={"access_token": next(tokens)})
        seen.append((request.headers["Authorization"], request.headers.get("Content-Type")))
        if request.headers["Authorization"] == "Bearer expired":
            return httpx.Response(401, json={"detail": "token expired"})
        if request.headers.get("Content-Type") != "application/json":
            return httpx.Response(415, json={"detail": "Content-Type must be application/json"})
        return httpx.Response(202, json={"id": "p-1", "status": "queued"})

    with client_against(airflow) as client:
        answer = client.submit({"id": "p-1", "rule": "r"})

    assert answer["status"] == "queued"
    assert seen == [("Bearer expired", "application/json"), ("Bearer fresh", "application/json")]
