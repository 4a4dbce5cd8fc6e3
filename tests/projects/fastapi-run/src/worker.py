import os
import time

from celery import Celery

app = Celery("worker", broker=os.environ["BROKER_URL"], backend=os.environ["RESULT_BACKEND"])


@app.task
def add(x: int, y: int) -> int:
    time.sleep(0.1)
    return x + y
