"""The bundled products app: a products API whose new products are announced on Telegram by a Celery task.

Its own part: the launcher never imports it, and it imports nothing of the supervisor. It runs in p419's own
interpreter (the quick start), under the same launcher as any project.
"""
