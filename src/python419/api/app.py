"""FastAPI application: products in, notifications out through the outbox."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from python419 import __version__
from python419.api.health import health
from python419.api.limits import BodySizeLimit
from python419.api.schemas import NotificationOut, ProductCreated, ProductIn, ProductOut
from python419.settings import get_settings
from python419.store import Store, open_store
from python419.tasks.celery_app import get_app
from python419.tasks.outbox import enqueue

MAX_ID = 2**63 - 1  # SQLite's INTEGER range: larger ids would overflow, not 404


def create_app() -> FastAPI:
    settings = get_settings()
    celery_app = get_app()  # this process's Celery app: the outbox publishes through it
    app = FastAPI(title="python419", version=__version__)
    app.add_middleware(BodySizeLimit)

    @app.exception_handler(RequestValidationError)
    async def schema_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Without the echoed input: a NaN or a huge value there would make the 422 itself fail to encode.
        detail = [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    def store() -> Store:
        return open_store(settings.database_path)

    @app.post("/products", status_code=201, response_model=ProductCreated)
    def create_product(body: ProductIn) -> ProductCreated:
        product, notification = store().create_product(
            body.name, body.price, body.description, publish_lease=settings.lease_seconds
        )
        # Committed first, published second: if the broker is down the row stays pending for the sweep.
        enqueue(store(), settings, notification)
        notification = store().get_notification(notification.id) or notification
        return ProductCreated(
            **ProductOut.of(product, notification.id).model_dump(),
            notification=NotificationOut.of(notification),
        )

    @app.get("/products", response_model=list[ProductOut])
    def list_products(
        limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)
    ) -> list[ProductOut]:
        return [ProductOut.of(p) for p in store().list_products(limit=limit, offset=offset)]

    @app.get("/products/{product_id}", response_model=ProductOut)
    def get_product(product_id: int = Path(ge=1, le=MAX_ID)) -> ProductOut:
        product = store().get_product(product_id)
        if product is None:
            raise HTTPException(404, f"product {product_id} not found")
        notification = store().notification_for_product(product_id)
        return ProductOut.of(product, notification.id if notification else None)

    @app.get("/notifications/{notification_id}", response_model=NotificationOut)
    def get_notification(notification_id: int = Path(ge=1, le=MAX_ID)) -> NotificationOut:
        notification = store().get_notification(notification_id)
        if notification is None:
            raise HTTPException(404, f"notification {notification_id} not found")
        return NotificationOut.of(notification)

    @app.get("/health")
    def get_health(
        workers: bool = Query(True, description="Also ping workers (takes up to 0.5 s)."),
    ) -> JSONResponse:
        code, body = health(store(), settings, celery_app, ping_workers=workers)
        return JSONResponse(body, status_code=code)

    return app
