"""The Celery side. Importing this package (or any module in it) registers every task, in a straight line:

    settings -> celery_app (the app, configured) -> notifications (tasks registered on that app)

celery_app never imports notifications and notifications imports celery_app only, so there is no cycle and
no autodiscovery that can silently find nothing: the write-up's "Received unregistered task" cannot happen.
"""

from python419.tasks import (
    notifications,  # noqa: E402,I001  (registration: must come after the app)
    worker_hooks,  # noqa: E402,I001
)
from python419.tasks.celery_app import celery_app

__all__ = ["celery_app", "notifications", "worker_hooks"]
