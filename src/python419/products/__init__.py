"""The bundled products app: a products API whose new products are announced on Telegram by a Celery task.

Its own part: the launcher never imports it, and it imports nothing of the supervisor. It runs in p419's own
interpreter (the quick start), under the same launcher as any project.
"""

# How the supervisor and the doctor name the app (strings: importing it would read its settings).
API = "python419.products.api:app"
CELERY_APP = "python419.products.tasks.celery_app"
TASK_NAME = "tasks.notifications.send_tg_notification"  # the original project's wire name: keep it
