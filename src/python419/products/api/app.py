"""FastAPI application: products in, notifications out through the outbox."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import FastAPI, Header, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match, Route

from python419 import __version__
from python419.products.api.health import health
from python419.products.api.limits import MAX_BODY_BYTES, BodySizeLimit
from python419.products.api.schemas import (
    ErrorOut,
    NotificationOut,
    ProductCreated,
    ProductIn,
    ProductOut,
    UnprocessableOut,
)
from python419.products.settings import get_settings
from python419.products.store import IdempotencyConflict, Store, WriteBusy, open_store
from python419.products.tasks.celery_app import get_app
from python419.products.tasks.outbox import Relay

MAX_ID = 2**63 - 1  # SQLite's INTEGER range: larger ids or offsets would overflow, not 404

# Every status the API answers, declared in the OpenAPI document (FastAPI declares 422 by itself).
BAD_BODY: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "The body could not be read (e.g. not UTF-8)"},
    413: {"model": ErrorOut, "description": f"Body larger than {MAX_BODY_BYTES} bytes"},
}
# Declared in place of FastAPI's 422 (its own validation errors' shape); a reused Idempotency-Key is a 409: it
# conflicts with the state the first request left (the body alone is valid, as schemathesis's
# positive-data check holds it to be).
UNPROCESSABLE: dict[int | str, dict[str, Any]] = {
    422: {"model": UnprocessableOut, "description": "The body or a header is invalid (a list of errors)"},
    409: {
        "model": ErrorOut,
        "description": "The Idempotency-Key was already used with a different body: use a new key",
    },
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "No such id"}}
STORAGE: dict[int | str, dict[str, Any]] = {
    503: {
        "model": ErrorOut,
        "description": "The database cannot be written (e.g. disk full); nothing was kept",
    }
}


def request_hash(body: ProductIn) -> str:
    return hashlib.sha256(json.dumps(body.model_dump(), sort_keys=True).encode()).hexdigest()


T = TypeVar("T")


async def write(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A short SQLite write on the event loop when no other writer holds the lock, else on the thread pool.

    Measured under 50 concurrent POSTs (wrk, 2 cores): the endpoint as `def` cost the API process 1.4 ms of
    CPU per request before any publishing, as `async def` writing inline 0.6 ms (the insert itself takes
    0.06 ms; the rest was handing each request to a pool thread and 40 threads taking turns at the GIL:
    ~25 context switches per request, under 1 inline). Waiting for the lock (a worker writing, SQLite's
    busy handler sleeping) must not stall the loop: such a write goes to the pool, where it may wait. (A commit
    that fills the WAL to SQLite's autocheckpoint also checkpoints, on the loop: counted in the bench's p99.)
    """
    try:
        return call(*args, wait=False, **kwargs)
    except WriteBusy:
        return await run_in_threadpool(call, *args, wait=True, **kwargs)


def create_app() -> FastAPI:
    settings = get_settings()
    get_app()  # made now, as the default app of every thread: the outbox publishes the shared task through it
    relay = Relay(open_store(settings.database_path), settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(relay.stop)  # what requests handed over is published before the exit

    app = FastAPI(title="python419", version=__version__, lifespan=lifespan)
    app.add_middleware(BodySizeLimit)

    @app.exception_handler(RequestValidationError)
    async def schema_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Without the echoed input: a NaN or a huge value there would make the 422 itself fail to encode.
        detail = [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(sqlite3.OperationalError)
    async def storage_error(_: Request, exc: sqlite3.OperationalError) -> JSONResponse:
        # A full disk or a locked-out database: the transaction rolled back, nothing half-written.
        return JSONResponse({"detail": f"database unavailable: {exc}"}, status_code=503)

    @app.exception_handler(405)
    async def method_not_allowed(request: Request, _: Exception) -> JSONResponse:
        # Starlette's Allow lists only the first route matching the path (POST for /products, not GET):
        # list the methods of every route on this path.
        allowed = {
            method
            for route in app.router.routes
            if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] != Match.NONE
            for method in route.methods
        }
        return JSONResponse(
            {"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": ", ".join(sorted(allowed))}
        )

    def store() -> Store:
        return open_store(settings.database_path)

    @app.post(
        "/products",
        status_code=201,
        response_model=ProductCreated,
        responses={**BAD_BODY, **UNPROCESSABLE, **STORAGE},
    )
    async def create_product(
        body: ProductIn,
        response: Response,
        idempotency_key: str | None = Header(
            None,
            min_length=1,
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description="Retrying with the same key returns the product created the first time (one "
            "product, one notification); the same key with another body is a 409.",
        ),
    ) -> ProductCreated:
        # One write transaction: the product, its outbox row (already `queued`, with a lease) and the key.
        replayed = False
        if idempotency_key is None:
            product, notification = await write(
                store().create_product,
                body.name,
                body.price,
                body.description,
                queued_lease=settings.lease_seconds,
            )
        else:
            try:
                product, notification, replayed = await write(
                    store().create_product_once,
                    idempotency_key,
                    request_hash(body),
                    body.name,
                    body.price,
                    body.description,
                    queued_lease=settings.lease_seconds,
                )
            except IdempotencyConflict:
                raise HTTPException(
                    409, "Idempotency-Key already used with a different body: use a new key"
                ) from None
            response.headers["Idempotent-Replayed"] = "true" if replayed else "false"
        # Committed first, published second, by the relay: if the broker is down it puts the row back to
        # `pending` for the sweep; if this process dies first, the sweep sends it when the lease runs out.
        if not replayed:
            relay.submit(notification)
        return ProductCreated(
            **ProductOut.of(product, notification.id).model_dump(),
            notification=NotificationOut.of(notification),
        )

    @app.get("/products", response_model=list[ProductOut])
    def list_products(
        limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=MAX_ID)
    ) -> list[ProductOut]:
        return [ProductOut.of(p, n) for p, n in store().list_products(limit=limit, offset=offset)]

    @app.get("/products/{product_id}", response_model=ProductOut, responses=NOT_FOUND)
    def get_product(product_id: int = Path(ge=1, le=MAX_ID)) -> ProductOut:
        product = store().get_product(product_id)
        if product is None:
            raise HTTPException(404, f"product {product_id} not found")
        notification = store().notification_for_product(product_id)
        return ProductOut.of(product, notification.id if notification else None)

    @app.get("/notifications/{notification_id}", response_model=NotificationOut, responses=NOT_FOUND)
    def get_notification(notification_id: int = Path(ge=1, le=MAX_ID)) -> NotificationOut:
        notification = store().get_notification(notification_id)
        if notification is None:
            raise HTTPException(404, f"notification {notification_id} not found")
        return NotificationOut.of(notification)

    @app.get(
        "/health",
        responses={
            200: {
                "description": "Database and broker reachable (status `ok`, or `degraded`: no live worker)"
            },
            503: {"description": "Database or broker unreachable (status `down`)"},
        },
    )
    def get_health(
        workers: bool = Query(True, description="Also report live workers (from their heartbeats)."),
    ) -> JSONResponse:
        code, body = health(store(), settings, ping_workers=workers)
        return JSONResponse(body, status_code=code)

    return app
