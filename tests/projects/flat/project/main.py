from celery.result import AsyncResult
from fastapi import Body, FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from worker import create_task

app = FastAPI()
app.mount("/static", StaticFiles(directory="static"), name="static")  # relative: the working directory matters


@app.get("/")
def home():
    return {"hello": "flat"}


@app.post("/tasks", status_code=201)
def run_task(payload=Body(...)):
    task = create_task.delay(int(payload["type"]))
    return JSONResponse({"task_id": task.id})


@app.get("/tasks/{task_id}")
def get_status(task_id):
    task_result = AsyncResult(task_id)
    return JSONResponse(
        {"task_id": task_id, "task_status": task_result.status, "task_result": task_result.result}
    )
