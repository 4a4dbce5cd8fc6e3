from fastapi import Body
from fastapi.responses import JSONResponse

from project.celery_utils import get_task_info
from project.config import settings

from . import users_router
from .tasks import divide, task_test_task


@users_router.get("/settings/")
def show_settings():
    return {"config": type(settings).__name__, "database_url": settings.DATABASE_URL}


@users_router.post("/form/")
def form_example_post(payload=Body(...)):
    task = divide.delay(int(payload["x"]), int(payload["y"]))
    return JSONResponse({"task_id": task.task_id})


@users_router.post("/priority/")
def priority_task():
    task = task_test_task.delay()
    return JSONResponse({"task_id": task.task_id})


@users_router.get("/task_status/")
def task_status(task_id: str):
    response = get_task_info(task_id)
    return JSONResponse(response)
