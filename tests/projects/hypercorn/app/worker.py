from celery import Celery

celery_app = Celery("worker", broker="amqp://guest:guest@rabbitmq:5672//", backend="rpc://")


@celery_app.task(name="add")
def add(x, y):
    return x + y
