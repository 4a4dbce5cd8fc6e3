import os
import platform
import time

import celery as celery_package
from celery import Celery


celery = Celery(__name__)
celery.conf.broker_url = os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379")
celery.conf.result_backend = os.environ.get("CELERY_RESULT_BACKEND", "redis://localhost:6379")


@celery.task(name="create_task")
def create_task(task_type):
    time.sleep(int(task_type) * 0.1)
    # Which interpreter and which Celery ran the task: the project's own venv, not the launcher's.
    return {"slept": int(task_type) * 0.1, "python": platform.python_version(), "celery": celery_package.__version__}
