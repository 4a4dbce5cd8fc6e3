"""Shape 2: an app factory; the Celery app hangs off the FastAPI app; three queues, none created on demand."""

import os

from celery import Celery
from fastapi import FastAPI
from kombu import Queue


def create_celery() -> Celery:
    celery_app = Celery("factory")
    celery_app.conf.update(
        broker_url=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
        result_backend=os.environ.get("CELERY_RESULT_BACKEND", "redis://127.0.0.1:6379/0"),
        task_queues=[Queue("default"), Queue("high_priority"), Queue("low_priority")],
        task_default_queue="default",
        task_create_missing_queues=False,
        task_routes={"tasks.urgent": {"queue": "high_priority"}, "tasks.later": {"queue": "low_priority"}},
        imports=["tasks"],
        beat_schedule={"tick": {"task": "tasks.later", "schedule": 1.0, "args": (7,)}},
    )
    return celery_app


def create_app() -> FastAPI:
    app = FastAPI()
    app.celery_app = create_celery()

    @app.get("/")
    def root():
        return {"database": os.environ.get("DATABASE_URL")}

    @app.post("/urgent/{n}")
    def urgent(n: int):
        result = app.celery_app.send_task("tasks.urgent", args=(n,))
        return {"task_id": result.id}

    @app.post("/later/{n}")
    def later(n: int):
        result = app.celery_app.send_task("tasks.later", args=(n,))
        return {"task_id": result.id}

    @app.get("/result/{task_id}")
    def result(task_id: str):
        res = app.celery_app.AsyncResult(task_id)
        return {"status": res.status, "result": res.result if res.successful() else None}

    return app


app = create_app()
celery = app.celery_app
