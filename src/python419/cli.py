"""`p419`: a thin Typer layer over the package. Each verb parses, calls one function, prints, exits."""

from __future__ import annotations

import argparse
import sys
from enum import Enum
from typing import TYPE_CHECKING

import typer

from python419.cli_support import current, err, escape, fail, out
from python419.cli_up import LOG_LEVELS, POOLS, SUMMARY, pool_name

if TYPE_CHECKING:
    from python419.project import Project
    from python419.settings import Settings

# Imported by every `p419` call, `--help` included: rich, pydantic and the project's modules are imported by the
# verbs that use them (measured: 0.29-0.31 s for --help over a bare interpreter when imported here).

app = typer.Typer(
    help="Launch, supervise and diagnose a FastAPI + Celery + Redis stack: your project, or the bundled "
    "products app (Windows-aware).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain help: typer's rich help formatting alone cost ~47 ms per --help
)


# typer takes choices as an Enum: made from the one list of each (workers.POOLS, cli_up.LOG_LEVELS).
PoolName = Enum("PoolName", {pool: pool for pool in POOLS}, type=str)  # type: ignore[misc]
LogLevel = Enum("LogLevel", {level: level for level in LOG_LEVELS}, type=str)  # type: ignore[misc]


def installed_pool(value: PoolName | None) -> PoolName | None:
    """cli_up's rule (gevent and eventlet only when installed), said by typer."""
    if value is not None:
        try:
            pool_name(value.value)
        except argparse.ArgumentTypeError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


APP_DIR = typer.Option(None, "--app-dir", help="Working directory of the children and import root.")
API = typer.Option(
    None, "--api", metavar="MODULE:ATTR", help="ASGI app to serve with uvicorn, e.g. main:app."
)
API_COMMAND = typer.Option(None, "--api-command", help="Any other API server command (instead of --api).")
CELERY = typer.Option(None, "--celery", metavar="MODULE[:ATTR]", help="Celery app, as for celery -A.")
PYTHON = typer.Option(
    None,
    "--python",
    metavar="PATH",
    help="The project's interpreter or virtualenv (default: VIRTUAL_ENV, .venv/venv/env, poetry/pipenv/uv/pdm).",
)


@app.command()
def worker(
    pool: PoolName | None = typer.Option(
        None, help="Celery pool; forced to solo on Windows.", callback=installed_pool
    ),
    concurrency: int | None = typer.Option(None, min=1, max=256, help="Processes/threads (not for solo)."),
    queues: str | None = typer.Option(None, "-Q", "--queues", help="Queues to consume, comma-separated."),
    loglevel: LogLevel = typer.Option(LogLevel("info"), help="Worker log level."),
    hostname: str | None = typer.Option(None, help="Node name, e.g. worker1@%h."),
    app_dir: str | None = APP_DIR,
    celery: str | None = CELERY,
    python: str | None = PYTHON,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the command that would run, then exit."),
) -> None:
    """Start one Celery worker of the project with the right pool for this OS, on the running stack's broker:
    the command `p419 up` runs for the project's first worker group, with these flags on top."""
    import os

    from python419.broker import make_embedded_folders, runtime_target
    from python419.project import Flags
    from python419.runfiles import running_broker
    from python419.supervisor.plan import command_line, launcher
    from python419.supervisor.process import verb_environment
    from python419.workers import plan_group, worker_command

    flags = Flags(
        app_dir=app_dir,
        python=python,
        celery=celery,
        pool=pool.value if pool else None,
        concurrency=concurrency,
        queues=tuple(q for q in queues.split(",") if q) if queues else None,
    )
    project, config = current(flags)
    group = plan_group(config.platform, project.workers[0])
    for warning in group.warnings:
        err().print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if group.processes > group.group.count:
        err().print(
            f"[yellow]warning:[/] concurrency {group.group.concurrency} on Windows means "
            f"{group.processes} solo processes (p419 up runs them); this runs one",
            soft_wrap=True,
        )
    from python419.platforms import detect_platform
    from python419.supervisor.run import UpError, find_project_python

    try:
        found = find_project_python(project, detect_platform(), {"celery"})
    except UpError as exc:
        raise fail(str(exc), exc.code) from None
    argv = worker_command(launcher(found.path), project.celery, group, loglevel.value, hostname)
    target = runtime_target(config, os.environ, running_broker(config.run_dir))
    say = lambda text: out().print(text, soft_wrap=True, markup=False)  # noqa: E731
    say(f"p419 worker: pool={group.choice.pool} on {config.platform} ({group.choice.reason})")
    say(f"p419 worker: broker {target.safe}; app {project.celery} in {project.app_dir}")
    say(f"p419 worker: {found.line}")
    if dry_run:
        say(command_line(argv, config.platform))
        return
    make_embedded_folders(target)
    env = verb_environment(project, config, target, found.path, os.environ)
    exec_child(argv, env, str(project.app_dir))


def exec_child(argv: list[str], env: dict[str, str], cwd: str) -> None:
    """Become the child (POSIX: exec, so signals reach it as they would a worker typed by hand); Windows has
    no exec: run it and exit with its code (Ctrl+C reaches both; the child's warm stop decides)."""
    import os
    import signal
    import subprocess

    sys.stdout.flush()
    if os.name != "nt":
        os.chdir(cwd)
        os.execve(argv[0], argv, env)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise typer.Exit(subprocess.call(argv, env=env, cwd=cwd))


@app.command(context_settings={"allow_interspersed_args": True})
def send(
    name: str = typer.Argument(
        ..., help="Your project: a task (its full name, or its last part). Bundled app: a product name."
    ),
    args: list[str] | None = typer.Argument(
        None, help="The task's arguments, each as JSON when it parses (2, '\"x\"', '{\"a\": 1}')."
    ),
    kwargs: str | None = typer.Option(None, "--kwargs", metavar="JSON", help="The task's keyword arguments."),
    queue: str | None = typer.Option(
        None, "--queue", "-Q", help="Send to this queue (default: the app's routes)."
    ),
    wait: bool = typer.Option(False, "--wait", help="Wait for the result and print its state and value."),
    timeout: float = typer.Option(30.0, min=0.1, help="Seconds to wait for the result."),
    python: str | None = PYTHON,
    product_id: int = typer.Option(
        0, "--product-id", min=0, help="Bundled app: the product id in the message."
    ),
    no_wait: bool = typer.Option(False, "--no-wait", help="Bundled app: enqueue and exit without waiting."),
    direct: bool = typer.Option(
        False, "--direct", help="Bundled app: send in this process, no broker or worker."
    ),
) -> None:
    """Send a task of your project to the running stack (its id; with --wait its state and result), or, for
    the bundled app, fire a product notification by hand and show what happened."""
    from python419.project import Flags

    project, config = current(Flags(python=python))
    if not project.bundled:
        send_task(project, config, name, args or [], kwargs, queue, timeout if wait else 0.0)
    from python419.products import sending
    from python419.products.settings import ProductSettings

    assert isinstance(config, ProductSettings)
    if args or kwargs or queue:
        raise fail("the bundled app's p419 send takes a product NAME only (and --product-id)", 2)
    outcome = sending.send(config, name, product_id, timeout=timeout, wait=not no_wait, direct=direct)
    (out() if outcome.ok else err()).print(outcome.line, soft_wrap=True, markup=False)
    raise typer.Exit(0 if outcome.ok else 1)


def send_task(
    project: Project,
    config: Settings,
    name: str,
    args: list[str],
    kwargs: str | None,
    queue: str | None,
    wait: float,
) -> None:
    """Run the launcher's `send` in the project's interpreter, on the broker the running stack uses."""
    import os
    import subprocess

    from python419.broker import make_embedded_folders, runtime_target
    from python419.launch import contract
    from python419.platforms import detect_platform
    from python419.runfiles import running_broker
    from python419.supervisor.process import verb_environment
    from python419.supervisor.run import UpError, find_project_python

    try:
        found = find_project_python(project, detect_platform(), {"celery"})
    except UpError as exc:
        raise fail(str(exc), exc.code) from None
    target = runtime_target(config, os.environ, running_broker(config.run_dir))
    make_embedded_folders(target)
    env = verb_environment(project, config, target, found.path, os.environ)
    argv = [*contract.launcher_argv(found.path), "send", project.celery, name, kwargs or "", queue or ""]
    argv += [f"{wait:g}", *args]
    raise typer.Exit(subprocess.call(argv, env=env, cwd=project.app_dir))


@app.command()
def api(
    reload: bool = typer.Option(False, "--reload", help="Restart on code changes (development)."),
    python: str | None = PYTHON,
) -> None:
    """Serve the project's API (or the bundled products API) with uvicorn on P419_API_HOST:P419_API_PORT, in
    the project's interpreter, on the running stack's broker."""
    import os

    from python419.broker import runtime_target
    from python419.platforms import detect_platform
    from python419.project import Flags
    from python419.runfiles import running_broker
    from python419.supervisor.plan import launcher
    from python419.supervisor.process import verb_environment
    from python419.supervisor.run import UpError, find_project_python

    project, config = current(Flags(python=python))
    if not project.api:
        raise fail("this project runs its API with api_command; run that command instead", 2)
    try:
        found = find_project_python(project, detect_platform(), {"uvicorn"})
    except UpError as exc:
        raise fail(str(exc), exc.code) from None
    argv = [*launcher(found.path), "uvicorn", project.api, "--host", config.api_host]
    argv += ["--port", str(config.api_port), *(["--reload"] if reload else [])]
    target = runtime_target(config, os.environ, running_broker(config.run_dir))
    env = verb_environment(project, config, target, found.path, os.environ)
    out().print(f"p419 api: {found.line}", soft_wrap=True, markup=False)
    exec_child(argv, env, str(project.app_dir))


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    help=SUMMARY,
)
def up(ctx: typer.Context) -> None:
    """Listed here; parsed by cli_up.py (argparse), where its options are defined (the entry point sends
    `p419 up` there without importing typer)."""
    from python419.cli_up import main as up_main

    up_main(list(ctx.args))


@app.command()
def init(
    force: bool = typer.Option(False, "--force", help="Replace an existing p419 configuration."),
) -> None:
    """Write the p419 configuration of the project in this folder from its docker-compose.yml or Procfile."""
    from pathlib import Path

    from python419.project import ProjectError
    from python419.project_init import init_project

    try:
        source, written, found = init_project(Path.cwd(), force=force)
    except ProjectError as exc:
        raise fail(str(exc), 2) from None
    say = lambda text: out().print(text, soft_wrap=True, markup=False)  # noqa: E731
    say(f"read {source.name}:")
    for line in found.lines:
        say(f"  {line}")
    for line in found.left:
        say(f"  left to you: {line}")
    say(f"wrote {written.name}; next: p419 up (p419 up --dry-run shows what it runs)")


@app.command()
def restart(
    names: list[str] = typer.Argument(
        ..., help="Children (worker1), groups (worker) or kinds (api, workers)."
    ),
    timeout: float = typer.Option(30.0, min=1, help="Seconds to wait for the new process(es)."),
) -> None:
    """Restart children of a running `p419 up` (workers warmly: a task in hand finishes)."""
    import time

    from python419.runfiles import read_state, request_restart

    _, config = current()
    state = read_state(config.run_dir)
    if state is None:
        raise fail("p419 up is not running", 1)
    before = {name: child.get("pid") for name, child in state.get("children", {}).items()}
    request_restart(config.run_dir, names)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = read_state(config.run_dir)
        if now is None:
            raise fail("p419 up stopped", 1)
        changed = {
            name: child.get("pid")
            for name, child in now.get("children", {}).items()
            if child.get("pid") != before.get(name) and child.get("state") == "running"
        }
        if changed:
            for name, pid in changed.items():
                out().print(f"{name} restarted (pid {before.get(name)} → {pid})", markup=False)
            return
    raise fail(f"no child restarted within {timeout:g}s (p419 status shows what runs)", 1)


@app.command()
def status(json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the children of a running `p419 up`: pid, state, uptime, restarts, CPU, memory."""
    import json

    from python419.runfiles import read_state
    from python419.supervisor.control import status_document, status_table

    _, config = current()
    state = read_state(config.run_dir)
    if state is None:
        if json_output:
            print(json.dumps({"running": False}))
        raise fail("p419 up is not running (no live state file in the data dir)", 1)
    document = status_document(state)
    if json_output:
        print(json.dumps(document, indent=2))
    else:
        out().print(status_table(document))


@app.command()
def down(timeout: float = typer.Option(30.0, min=0, help="Seconds to wait for the stack to stop.")) -> None:
    """Ask a running `p419 up` to stop, as Ctrl+C would, and wait for it."""
    from python419.runfiles import read_state
    from python419.supervisor.control import stop_and_wait

    _, config = current()
    run_dir = config.run_dir
    state = read_state(run_dir)
    if state is None:
        raise fail("p419 up is not running", 1)
    if not stop_and_wait(run_dir, state, timeout):
        raise fail(f"p419 up (pid {state['pid']}) did not stop within {timeout:g}s", 1)
    out().print(f"p419 up (pid {state['pid']}) stopped")


from python419.production.commands import export_app, service_app  # noqa: E402  (their own package too)

app.add_typer(export_app, name="export")
app.add_typer(service_app, name="service")

from python419.doctor.command import doctor  # noqa: E402  (verbs that live in their own package)

app.command()(doctor)
