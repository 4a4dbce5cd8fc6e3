"""The child side of `p419 up`: the thin launcher that runs in the PROJECT's interpreter.

Run by path (`PYTHON .../launch/__main__.py celery ...`), never as `python419.launch` there: the project's
environment need not have python419 installed. Everything in this package uses the standard library and what a
Celery project already has (celery, kombu; uvicorn for the API; redis-py on Redis), imports its siblings
relatively, and works on Python 3.9 to 3.13.
"""
