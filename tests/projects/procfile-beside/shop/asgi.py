from fastapi import FastAPI

from shop.tasks import app as celery_app
from shop.tasks import place_order

app = FastAPI()


@app.get("/")
def home():
    return {"shop": "open"}


@app.post("/orders/{sku}")
def order(sku: str, quantity: int = 1):
    return {"task_id": place_order.delay(sku, quantity).id}


@app.get("/orders/status/{task_id}")
def status(task_id: str):
    res = celery_app.AsyncResult(task_id)
    return {"status": res.status, "result": res.result if res.successful() else None}
