"""`p419`: a thin Typer layer over the package. Each verb parses, calls one function, prints, exits."""

from __future__ import annotations

import shlex
import sys
from enum import Enum

import typer
from rich.console import Console

from python419.platforms import celery_worker_command, choose_pool, worker_args
from python419.settings import Settings, SettingsError, get_settings, safe_url

app = typer.Typer(
    help="Launch, supervise and diagnose the python419 FastAPI + Celery + Redis stack (Windows-aware).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


class PoolName(str, Enum):
    prefork = "prefork"
    solo = "solo"
    threads = "threads"
    gevent = "gevent"
    eventlet = "eventlet"


class LogLevel(str, Enum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]p419:[/] {message}", markup=True, soft_wrap=True)
    return typer.Exit(code)


def settings() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        raise fail(str(exc), 2) from None


@app.callback()
def _main() -> None:
    settings()  # bad configuration: one clear line and exit 2, before any verb runs


@app.command()
def worker(
    pool: PoolName | None = typer.Option(None, help="Celery pool; forced to solo on Windows."),
    concurrency: int | None = typer.Option(None, min=1, max=256, help="Processes/threads (not for solo)."),
    loglevel: LogLevel = typer.Option(LogLevel.info, help="Worker log level."),
    hostname: str | None = typer.Option(None, help="Node name, e.g. worker1@%h."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the command that would run, then exit."),
) -> None:
    """Start a Celery worker with the right pool for this OS."""
    config = settings()
    choice = choose_pool(config.platform, pool.value if pool else None)
    if choice.warning:
        err.print(f"[yellow]warning:[/] {choice.warning}", soft_wrap=True)
    args = worker_args(choice.pool, concurrency=concurrency, loglevel=loglevel.value, hostname=hostname)
    out.print(f"p419 worker: pool={choice.pool} on {config.platform} ({choice.reason})", soft_wrap=True)
    out.print(f"p419 worker: broker {safe_url(config.broker_url)}", soft_wrap=True)
    if dry_run:
        out.print(shlex.join(celery_worker_command(sys.executable, args)), soft_wrap=True)
        return
    from python419.tasks import celery_app

    celery_app.worker_main(["worker", *args])


@app.command()
def send(
    name: str = typer.Argument(..., help="Product name to notify about."),
    product_id: int = typer.Option(0, "--product-id", min=0, help="Product id shown in the message."),
    timeout: float = typer.Option(30.0, min=0.1, help="Seconds to wait for the worker's result."),
    no_wait: bool = typer.Option(False, "--no-wait", help="Enqueue and exit without waiting."),
    direct: bool = typer.Option(False, "--direct", help="Send in this process, with no broker or worker."),
) -> None:
    """Fire a notification by hand and show what happened."""
    from python419 import sending

    outcome = sending.send(settings(), name, product_id, timeout=timeout, wait=not no_wait, direct=direct)
    (out if outcome.ok else err).print(outcome.line, soft_wrap=True, markup=False)
    raise typer.Exit(0 if outcome.ok else 1)


@app.command()
def api(
    reload: bool = typer.Option(False, "--reload", help="Restart on code changes (development)."),
) -> None:
    """Serve the products API with uvicorn on P419_API_HOST:P419_API_PORT."""
    import uvicorn

    config = settings()
    uvicorn.run("python419.api:app", host=config.api_host, port=config.api_port, reload=reload)


from python419.doctor.command import doctor  # noqa: E402  (verbs that live in their own package)

app.command()(doctor)


def main() -> None:
    app()
