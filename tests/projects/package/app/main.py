from fastapi import FastAPI

from app.worker import celery_app

app = FastAPI()


@app.get("/health")
def health():
    return {"ok": True}


@app.post("/test-celery/{word}", status_code=201)
def test_celery(word: str):
    task = celery_app.send_task("app.worker.test_celery", args=[word])
    return {"task_id": task.id}


@app.get("/result/{task_id}")
def result(task_id: str):
    res = celery_app.AsyncResult(task_id)
    return {"status": res.status, "result": res.result if res.successful() else None}
