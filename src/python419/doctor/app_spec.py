"""`--app MODULE` or `--app MODULE:attr`, the way `celery -A` takes it."""

from __future__ import annotations

from dataclasses import dataclass

from python419.products import CELERY_APP

DEFAULT_APP = CELERY_APP  # the bundled app's


@dataclass(frozen=True)
class AppSpec:
    module: str
    attr: str | None = None

    def __str__(self) -> str:
        return f"{self.module}:{self.attr}" if self.attr else self.module


def parse_app_spec(text: str) -> AppSpec:
    """Raises ValueError with a readable reason for anything `celery -A` could not import either."""
    module, sep, attr = text.strip().partition(":")
    if not module:
        raise ValueError("expected MODULE or MODULE:attr, e.g. python419.products.tasks.celery_app")
    if not all(part.isidentifier() for part in module.split(".")):
        raise ValueError(f"{module!r} is not a dotted module name")
    if sep and not all(part.isidentifier() for part in attr.split(".")):
        raise ValueError(f"{attr!r} is not an attribute name")
    return AppSpec(module, attr or None)


def is_bundled_app(spec: AppSpec) -> bool:
    """Does `--app` name the bundled products app (a module of this package)?"""
    return spec.module.split(".", 1)[0] == DEFAULT_APP.split(".", 1)[0]
