"""The products API. `uvicorn python419.products.api:app`."""

from python419.products.api.app import create_app

app = create_app()

__all__ = ["app", "create_app"]
