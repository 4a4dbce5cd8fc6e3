import os

from fastapi import FastAPI
from pydantic import BaseModel

from worker import add

app = FastAPI(title="numbers")


class Numbers(BaseModel):
    x: int
    y: int


@app.get("/")
def index():
    return {"greeting": os.environ.get("GREETING"), "broker": os.environ.get("BROKER_URL")}


@app.post("/add", status_code=202)
def enqueue(numbers: Numbers):
    result = add.delay(numbers.x, numbers.y)
    return {"id": result.id}


@app.get("/add/{task_id}")
def status(task_id: str):
    result = add.AsyncResult(task_id)
    return {"state": result.state, "value": result.result if result.successful() else None}
