"""Shape 3: a package; the broker hard-coded (CELERY_BROKER_URL in the environment wins over it)."""

from celery import Celery

celery_app = Celery("worker", broker="amqp://guest@queue//", backend="rpc://")
celery_app.conf.task_routes = {"app.worker.test_celery": "main-queue"}


@celery_app.task(acks_late=True)
def test_celery(word: str) -> str:
    return f"test task return {word}"
