import logging
import time

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task
def divide(x, y):
    time.sleep(0.1)
    return x / y


@shared_task(name="task_schedule_work")
def task_schedule_work():
    logger.info("task_schedule_work run")


@shared_task(name="high_priority:project.users.tasks.task_test_task", bind=True)
def task_test_task(self):
    return {"queue": self.request.delivery_info.get("routing_key"), "worker": self.request.hostname}
