"""The products API. `uvicorn python419.api:app`."""

from python419.api.app import create_app

app = create_app()

__all__ = ["app", "create_app"]
