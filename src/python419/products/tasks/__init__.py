"""The Celery side of the bundled app. Importing this package registers every task in a straight line:

    notifications (the task, as a shared task) -> celery_app.get_app() (the app, then the task on it)

No autodiscovery that can silently find nothing, and no cycle: the write-up's "Received unregistered task"
cannot happen. Importing makes no app and reads no settings; `celery_app.get_app()` does, on first use.
"""

from python419.products.tasks import (
    notifications,  # noqa: I001
    worker_hooks,
)

__all__ = ["notifications", "worker_hooks"]
