"""The API over real HTTP (uvicorn): status codes, validation, limits, health."""

from __future__ import annotations

import httpx
import pytest


def test_create_get_and_list(api: httpx.Client) -> None:
    created = api.post("/products", json={"name": "  Green tea  ", "price": 0, "description": "loose leaf"})
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == "Green tea" and body["price"] == 0 and body["description"] == "loose leaf"
    assert body["notification"]["id"] == body["notification_id"]
    got = api.get(f"/products/{body['id']}")
    assert got.status_code == 200 and got.json()["notification_id"] == body["notification_id"]
    assert body["id"] in [p["id"] for p in api.get("/products", params={"limit": 1000}).json()]
    note = api.get(f"/notifications/{body['notification_id']}").json()
    assert set(note) == {"id", "product_id", "status", "attempts", "last_error", "task_id"}


@pytest.mark.parametrize(
    "payload",
    [
        {"price": 1},
        {"name": "", "price": 1},
        {"name": "   ", "price": 1},
        {"name": "x" * 201, "price": 1},
        {"name": "ok", "price": -0.01},
        {"name": "ok", "price": "free"},
        {"name": "ok"},
        {"name": "ok", "price": 1, "colour": "red"},
        {"name": ["list"], "price": 1},
    ],
)
def test_schema_errors_are_422_with_a_reason(api: httpx.Client, payload: dict) -> None:
    response = api.post("/products", json=payload)
    assert response.status_code == 422
    assert response.json()["detail"]


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[]", b"null", b'{"name": "x", "price": NaN}'])
def test_malformed_bodies_are_4xx_never_500(api: httpx.Client, raw: bytes) -> None:
    response = api.post("/products", content=raw, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text


def test_name_of_exactly_200_chars_is_accepted(api: httpx.Client) -> None:
    assert api.post("/products", json={"name": "n" * 200, "price": 1}).status_code == 201


def test_oversized_bodies_are_413(api: httpx.Client) -> None:
    big = {"name": "x", "price": 1, "description": "d" * 100_000}
    assert api.post("/products", json=big).status_code == 413

    def chunks():  # no content-length: the limit must hold while streaming too
        for _ in range(200):
            yield b"x" * 1024

    response = api.post("/products", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


@pytest.mark.parametrize("path", ["/products/999999", "/notifications/999999"])
def test_missing_is_404(api: httpx.Client, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 404 and "not found" in response.json()["detail"]


@pytest.mark.parametrize(
    "path", ["/products/abc", "/products/0", "/products/99999999999999999999999", "/notifications/-1"]
)
def test_bad_ids_are_422(api: httpx.Client, path: str) -> None:
    assert api.get(path).status_code == 422


def test_health_reports_every_component(api: httpx.Client) -> None:
    for _ in range(5):  # every call, not just most: pings on a reused connection used to lose 1 reply in 4
        assert api.get("/health").json()["workers"]["ok"]
    response = api.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] and body["database"]["path"].endswith("p419.db")
    assert body["broker"]["ok"] and body["broker"]["kind"] == "redis"
    assert any(name.startswith("shared@") for name in body["workers"]["names"])
