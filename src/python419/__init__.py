"""python419: a products API that notifies Telegram through Celery, and `p419`, its Windows-aware launcher."""

__version__ = "0.1.0"
