"""`p419`: a thin Typer layer over the package. Each verb parses, calls one function, prints, exits."""

from __future__ import annotations

import shlex
import sys
from enum import Enum

import typer
from rich.console import Console
from rich.markup import escape

from python419.platforms import celery_worker_command, choose_pool, detect_platform, worker_args
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


class BrokerChoice(str, Enum):
    auto = "auto"
    redis = "redis"
    embedded = "embedded"


class LogLevel(str, Enum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]p419:[/] {escape(message)}", markup=True, soft_wrap=True)
    return typer.Exit(code)


def settings() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        raise fail(str(exc), 2) from None


def follow_running_stack() -> Settings:
    """In a second terminal, talk to the broker the running `p419 up` chose (it may be the embedded one)."""
    import os

    from python419.supervisor.state import read_state

    config = settings()
    state = read_state(config.data_dir.resolve() / "run")
    if state and "P419_BROKER" not in os.environ and state.get("broker") != config.broker:
        os.environ["P419_BROKER"] = str(state["broker"])
        get_settings.cache_clear()
        config = settings()
    return config


@app.callback()
def _main(ctx: typer.Context) -> None:
    # Bad configuration: one clear line and exit 2 before any verb runs; except for the doctor, which
    # reports invalid settings as its env.values check, next to everything else it finds.
    if ctx.invoked_subcommand != "doctor":
        settings()


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
        err.print(f"[yellow]warning:[/] {escape(choice.warning)}", soft_wrap=True)
    elif choice.pool == "solo" and concurrency and concurrency > 1:
        err.print(
            f"[yellow]warning:[/] --concurrency {concurrency} has no effect on the solo pool (one task at a "
            "time); for concurrency run several workers: p419 up --workers N",
            soft_wrap=True,
        )
    args = worker_args(choice.pool, concurrency=concurrency, loglevel=loglevel.value, hostname=hostname)
    out.print(
        f"p419 worker: pool={choice.pool} on {config.platform} ({choice.reason})",
        soft_wrap=True,
        markup=False,
    )
    out.print(f"p419 worker: broker {safe_url(config.broker_url)}", soft_wrap=True, markup=False)
    if dry_run:
        out.print(shlex.join(celery_worker_command(sys.executable, args)), soft_wrap=True, markup=False)
        return
    from python419.supervisor.orphans import start_watchdog_from_env
    from python419.tasks import celery_app

    start_watchdog_from_env(detect_platform())  # only under `p419 up`
    _warm_shutdown_on_ctrl_break()
    celery_app.worker_main(["worker", *args])


def _warm_shutdown_on_ctrl_break() -> None:
    """Windows: `p419 up` stops a worker with CTRL_BREAK_EVENT; make that Celery's warm shutdown."""
    import signal

    if hasattr(signal, "SIGBREAK"):
        # Re-raised as SIGTERM, Celery's own handler does the rest (its message, worker_shutting_down).
        signal.signal(signal.SIGBREAK, lambda *_: signal.raise_signal(signal.SIGTERM))


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

    outcome = sending.send(
        follow_running_stack(), name, product_id, timeout=timeout, wait=not no_wait, direct=direct
    )
    (out if outcome.ok else err).print(outcome.line, soft_wrap=True, markup=False)
    raise typer.Exit(0 if outcome.ok else 1)


@app.command()
def api(
    reload: bool = typer.Option(False, "--reload", help="Restart on code changes (development)."),
) -> None:
    """Serve the products API with uvicorn on P419_API_HOST:P419_API_PORT."""
    import uvicorn

    from python419.supervisor.orphans import start_watchdog_from_env

    start_watchdog_from_env(detect_platform())  # only under `p419 up`
    config = settings()
    uvicorn.run("python419.api:app", host=config.api_host, port=config.api_port, reload=reload)


@app.command()
def up(
    workers: int = typer.Option(
        1, min=1, max=32, help="Worker processes (each its own node: worker1@%h, ...)."
    ),
    pool: PoolName | None = typer.Option(None, help="Celery pool; forced to solo on Windows."),
    concurrency: int | None = typer.Option(
        None, min=1, max=256, help="Per-worker concurrency (not for solo)."
    ),
    loglevel: LogLevel = typer.Option(LogLevel.info, help="Worker log level."),
    reload: bool = typer.Option(False, "--reload", help="Restart the API on code changes."),
    broker: BrokerChoice = typer.Option(BrokerChoice.auto, help="redis, embedded (no server), or auto."),
    grace: float = typer.Option(
        10.0, min=0, max=600, help="Seconds children get to stop before being killed."
    ),
    ready_timeout: float = typer.Option(
        30.0, min=1, max=600, help="Seconds to wait for every child to be ready."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (argv, environment) and exit."),
) -> None:
    """Start Redis (if needed), the API and the workers; gate on readiness; restart crashes; Ctrl+C stops all."""
    from python419.supervisor.plan import UpOptions
    from python419.supervisor.run import UpError, make_plan, run

    options = UpOptions(
        workers=workers,
        pool=pool.value if pool else None,
        concurrency=concurrency,
        loglevel=loglevel.value,
        reload=reload,
        broker=broker.value,
    )
    try:
        plan = make_plan(settings(), options)
        if dry_run:
            from python419.supervisor.run import dry_run as show

            show(plan, out)
            return
        code = run(plan, out, grace=grace, ready_timeout=ready_timeout)
    except UpError as exc:
        raise fail(str(exc)) from None
    raise typer.Exit(code)


@app.command()
def status(json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the children of a running `p419 up`: pid, state, uptime, restarts, CPU, memory."""
    import json

    from python419.supervisor.control import status_document, status_table
    from python419.supervisor.state import read_state

    state = read_state(settings().data_dir.resolve() / "run")
    if state is None:
        if json_output:
            print(json.dumps({"running": False}))
        raise fail("p419 up is not running (no live state file in the data dir)", 1)
    document = status_document(state)
    if json_output:
        print(json.dumps(document, indent=2))
    else:
        out.print(status_table(document))


@app.command()
def down(timeout: float = typer.Option(30.0, min=0, help="Seconds to wait for the stack to stop.")) -> None:
    """Ask a running `p419 up` to stop, as Ctrl+C would, and wait for it."""
    from python419.supervisor.control import stop_and_wait
    from python419.supervisor.state import read_state

    run_dir = settings().data_dir.resolve() / "run"
    state = read_state(run_dir)
    if state is None:
        raise fail("p419 up is not running", 1)
    if not stop_and_wait(run_dir, state, timeout):
        raise fail(f"p419 up (pid {state['pid']}) did not stop within {timeout:g}s", 1)
    out.print(f"p419 up (pid {state['pid']}) stopped")


from python419.doctor.command import doctor  # noqa: E402  (verbs that live in their own package)

app.command()(doctor)


def main() -> None:
    app()
