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


def test_huge_offset_is_422_not_500(api: httpx.Client) -> None:
    assert api.get("/products", params={"offset": 856783949173171351871012470784}).status_code == 422
    assert api.get("/products", params={"offset": 2**63 - 1}).json() == []


def test_list_carries_each_products_notification_id(api: httpx.Client) -> None:
    created = [api.post("/products", json={"name": f"listed {i}", "price": 1}).json() for i in range(3)]
    listed = {p["id"]: p for p in api.get("/products", params={"limit": 1000}).json()}
    for body in created:
        assert listed[body["id"]]["notification_id"] == body["notification_id"] is not None


def test_idempotency_key_one_product_one_notification(api: httpx.Client) -> None:
    import uuid

    key = f"order-{uuid.uuid4()}"
    payload = {"name": "idempotent tea", "price": 2.5}
    first = api.post("/products", json=payload, headers={"Idempotency-Key": key})
    again = api.post("/products", json=payload, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 201
    assert first.headers["idempotent-replayed"] == "false" and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["notification_id"] == first.json()["notification_id"]
    other = api.post("/products", json={**payload, "price": 3}, headers={"Idempotency-Key": key})
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["detail"]
    bad = api.post("/products", json=payload, headers={"Idempotency-Key": "x" * 256})
    assert bad.status_code == 422
    fresh = api.post("/products", json=payload, headers={"Idempotency-Key": key + "-2"})
    assert fresh.json()["id"] != first.json()["id"]


def test_openapi_declares_every_status_the_api_answers(api: httpx.Client) -> None:
    """Each status seen over real HTTP must be in the OpenAPI document (schemathesis found 404/400 undeclared)."""
    seen = {
        ("post", "/products"): {
            api.post("/products", json={"name": "x", "price": 1}).status_code,
            api.post("/products", json={"name": ""}).status_code,
            api.post("/products", content=b"\xff{", headers={"content-type": "application/json"}).status_code,
            api.post("/products", json={"name": "x", "price": 1, "description": "d" * 100_000}).status_code,
        },
        ("get", "/products"): {
            api.get("/products").status_code,
            api.get("/products", params={"offset": -1}).status_code,
        },
        ("get", "/products/{product_id}"): {
            api.get("/products/1").status_code,
            api.get("/products/999999").status_code,
            api.get("/products/abc").status_code,
        },
        ("get", "/notifications/{notification_id}"): {
            api.get("/notifications/1").status_code,
            api.get("/notifications/999999").status_code,
            api.get("/notifications/0").status_code,
        },
        ("get", "/health"): {api.get("/health").status_code},
    }
    assert seen[("post", "/products")] >= {201, 413, 422}
    assert {404, 422} <= seen[("get", "/products/{product_id}")]
    paths = api.get("/openapi.json").json()["paths"]
    for (method, path), statuses in seen.items():
        declared = {int(code) for code in paths[path][method]["responses"]}
        assert statuses <= declared, f"{method.upper()} {path}: {statuses - declared} not declared"
    header = [p for p in paths["/products"]["post"]["parameters"] if p["name"] == "idempotency-key"]
    assert header and header[0]["in"] == "header"


def conforms(value: object, schema: dict, document: dict) -> bool:
    """Enough of JSON Schema for FastAPI's documents: $ref, anyOf/oneOf, type, required, properties, items."""
    if "$ref" in schema:
        return conforms(value, document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]], document)
    if "anyOf" in schema:
        return any(conforms(value, option, document) for option in schema["anyOf"])
    if "oneOf" in schema:
        return sum(conforms(value, option, document) for option in schema["oneOf"]) == 1
    kinds: dict[str, type | tuple[type, ...]] = {
        "object": dict,
        "array": list,
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "null": type(None),
    }
    if "type" in schema and (
        not isinstance(value, kinds[schema["type"]])
        or (isinstance(value, bool) and schema["type"] in ("integer", "number"))
    ):
        return False
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        return set(schema.get("required", ())) <= set(value) and all(
            conforms(v, properties[k], document) for k, v in value.items() if k in properties
        )
    if isinstance(value, list) and "items" in schema:
        return all(conforms(v, schema["items"], document) for v in value)
    return True


def test_every_4xx_of_post_products_matches_its_declared_schema(api: httpx.Client) -> None:
    """A reused Idempotency-Key is a 409 with a sentence; a body or header that is invalid, a 422 with the list
    of errors. Each answer validates against what the OpenAPI document declares for its status (the conflict
    used to be a 422 with a string where a list was declared: schemathesis "Response violates schema")."""
    import uuid

    key = f"conflict-{uuid.uuid4()}"
    assert api.post("/products", json={"name": "x", "price": 1}, headers={"Idempotency-Key": key}).is_success
    answers = {
        "conflict": (
            409,
            api.post("/products", json={"name": "x", "price": 2}, headers={"Idempotency-Key": key}),
        ),
        "body": (422, api.post("/products", json={"name": ""})),
        "header": (
            422,
            api.post("/products", json={"name": "x", "price": 1}, headers={"Idempotency-Key": "x" * 256}),
        ),
    }
    document = api.get("/openapi.json").json()
    responses = document["paths"]["/products"]["post"]["responses"]
    for kind, (status, answer) in answers.items():
        assert answer.status_code == status, (kind, answer.text)
        schema = responses[str(status)]["content"]["application/json"]["schema"]
        assert conforms(answer.json(), schema, document), f"{kind}: {answer.text} is not {schema}"
    assert isinstance(answers["conflict"][1].json()["detail"], str)
    assert not conforms(
        {"detail": "a sentence"}, responses["422"]["content"]["application/json"]["schema"], document
    )


@pytest.mark.parametrize("price", [False, True, "1.5"])
def test_a_price_must_be_a_json_number(api: httpx.Client, price: object) -> None:
    """`false` was taken as a price of 0.0 (201): the document says number, and a boolean is not one."""
    response = api.post("/products", json={"name": "not a price", "price": price})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "price"]
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["ProductIn"]["properties"]["price"]["type"] == "number"
    assert api.post("/products", json={"name": "int price", "price": 3}).json()["price"] == 3


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/products", {"GET", "POST"}),
        ("DELETE", "/products", {"GET", "POST"}),
        ("PUT", "/products", {"GET", "POST"}),
        ("DELETE", "/products/1", {"GET"}),
    ],
)
def test_405_allows_every_method_of_the_path(
    api: httpx.Client, method: str, path: str, allowed: set[str]
) -> None:
    """Starlette's Allow named the first route on the path only (`OPTIONS /products`: POST, not GET)."""
    response = api.request(method, path)
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed
    assert response.json() == {"detail": "Method Not Allowed"}


def test_health_says_no_live_worker_within_seconds_of_the_last_one_dying(make_stack) -> None:
    import time

    from tests.procs import wait_until

    stack = make_stack()
    worker = stack.start_worker("mortal@%h")
    stack.start_api()
    with httpx.Client(base_url=stack.api_url, timeout=5) as client:
        body = client.get("/health").json()
        assert body["status"] == "ok" and body["workers"]["names"] == [f"mortal@{_host()}"]
        worker.kill9()
        died = time.monotonic()
        assert wait_until(lambda: client.get("/health").json()["status"] == "degraded", 10, 0.1)
        assert time.monotonic() - died < 5
        workers = client.get("/health").json()["workers"]
        assert workers["ok"] is False and workers["names"] == []


def _host() -> str:
    import socket

    return socket.gethostname()


def test_health_names_the_children_the_supervisor_gave_up_on(tmp_path) -> None:
    """/health reads the running stack's state file: a fatal child makes the status `degraded` and is named."""
    import os

    from python419.products.api.health import given_up
    from python419.products.settings import ProductSettings
    from python419.supervisor import events as ev
    from python419.supervisor.state import StateFile

    settings = ProductSettings(P419_DATA_DIR=str(tmp_path))  # type: ignore[call-arg]
    state = StateFile(settings.run_dir, os.getpid(), "http://127.0.0.1:8000", "redis")
    for name in ("api", "worker1", "worker2"):
        state.handle(ev.Started(name, os.getpid()))
    assert given_up(settings) == []
    state.handle(ev.GaveUp("worker2", "could not start 5 times in a row", ()))
    assert given_up(settings) == ["worker2"]
    state.remove()
    assert given_up(settings) == []  # no stack running: nothing to report
