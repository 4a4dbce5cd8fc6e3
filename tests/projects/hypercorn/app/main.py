from fastapi import FastAPI

from .worker import add, celery_app

app = FastAPI()


@app.get("/")
async def root():
    return {"hello": "hypercorn"}


@app.post("/add/{x}/{y}")
async def enqueue(x: int, y: int):
    task = add.delay(x, y)
    return {"task_id": task.id}


@app.get("/tasks/{task_id}")
async def result(task_id: str):
    res = celery_app.AsyncResult(task_id)
    return {"status": res.status, "result": res.result if res.successful() else None}
