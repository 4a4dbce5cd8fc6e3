import os

from celery import Celery

app = Celery("shop", broker=os.environ.get("CELERY_BROKER_URL"), backend=os.environ.get("CELERY_RESULT_BACKEND"))
app.conf.task_routes = {"shop.tasks.place_order": {"queue": "orders"}}


@app.task
def place_order(sku: str, quantity: int) -> dict:
    return {"sku": sku, "quantity": quantity, "queue": place_order.request.delivery_info.get("routing_key")}
