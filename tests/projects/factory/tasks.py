from celery import current_app, shared_task


@shared_task(name="tasks.urgent", bind=True)
def urgent(self, n):
    return {"double": n * 2, "queue": self.request.delivery_info.get("routing_key"), "worker": self.request.hostname}


@shared_task(name="tasks.later", bind=True)
def later(self, n):
    return {"n": n, "queue": self.request.delivery_info.get("routing_key"), "worker": self.request.hostname}


__all__ = ["current_app", "urgent", "later"]
