"""Request and response bodies."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from python419.products.store import Notification, Product, Status


class ProductIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    # strict: a JSON number only (int or float); lax mode took true/false as 1.0/0.0 and "1.5" as 1.5.
    price: float = Field(ge=0, le=1e12, allow_inf_nan=False, strict=True)
    description: str | None = Field(default=None, max_length=5000)


class NotificationOut(BaseModel):
    id: int
    product_id: int
    status: Status
    attempts: int
    last_error: str | None
    task_id: str | None

    @classmethod
    def of(cls, n: Notification) -> NotificationOut:
        return cls(
            id=n.id,
            product_id=n.product_id,
            status=n.status,
            attempts=n.attempts,
            last_error=n.last_error,
            task_id=n.task_id,
        )


class ProductOut(BaseModel):
    id: int
    name: str
    price: float
    description: str | None
    notification_id: int | None = None

    @classmethod
    def of(cls, p: Product, notification_id: int | None = None) -> ProductOut:
        return cls(
            id=p.id, name=p.name, price=p.price, description=p.description, notification_id=notification_id
        )


class ProductCreated(ProductOut):
    notification: NotificationOut


class ErrorOut(BaseModel):
    detail: str


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class UnprocessableOut(BaseModel):
    """A 422 from POST /products: the body's validation errors, as the API's validation handler sends them."""

    detail: list[ValidationIssue]
