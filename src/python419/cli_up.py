"""`p419 up`'s command line, on argparse: the verb that starts the stack parses its flags without typer (whose
import and per-option adapters cost ~60 ms before the first child; docs/benchmarks.md, row 8). The typer app
lists `up` and hands its arguments here, so this is the one definition of up's options."""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable

from python419.cli_support import current, exit_now, fail, out, stack_console
from python419.workers import POOLS

LOG_LEVELS = ("debug", "info", "warning", "error")
SUMMARY = (
    "Start Redis (if needed), the API and the workers of your project (or the bundled app); gate on "
    "readiness; restart crashes; Ctrl+C stops all."
)


def bounded(kind: Callable[[str], float], low: float, high: float) -> Callable[[str], float]:
    """A number in [low, high]; argparse says `invalid ... value` for anything else, with the range."""

    def read(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not in the range {low:g}<=x<={high:g}")
        return value

    return read


def pool_name(text: str) -> str:
    """gevent and eventlet are Celery pools only when installed: say so in the parser, not in 5 tracebacks."""
    if text not in POOLS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(POOLS)}")
    if text in ("gevent", "eventlet") and importlib.util.find_spec(text) is None:
        raise argparse.ArgumentTypeError(f"the {text} pool is not installed here: pip install {text}")
    return text


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="p419 up", description=SUMMARY, allow_abbrev=False)
    add = p.add_argument
    on_off = argparse.BooleanOptionalAction
    add(
        "--workers",
        type=bounded(int, 1, 64),
        metavar="N",
        help="Worker processes per group (each its own node: worker1@%%h, ...).",
    )
    add(
        "--pool",
        type=pool_name,
        metavar="{" + ",".join(POOLS) + "}",
        help="Celery pool; forced to solo on Windows.",
    )
    add(
        "--concurrency",
        type=bounded(int, 1, 256),
        metavar="N",
        help="Per-worker concurrency (on Windows: that many solo processes).",
    )
    add("-Q", "--queues", help="Queues the workers consume, comma-separated.")
    add("--loglevel", choices=LOG_LEVELS, default="info", help="Worker log level (default: info).")
    add("--reload", action=on_off, help="Restart the API and workers (warmly) when a .py file changes.")
    add(
        "--only",
        help="Run part of the stack against a running one's Redis: api, workers, beat, flower (comma-separated).",
    )
    add("--beat", action=on_off, help="Run exactly one celery beat.")
    add("--flower", action=on_off, help="Run Flower on 127.0.0.1:5555.")
    add("--broker", help="auto (default), redis, embedded (no server), or a redis:// URL.")
    add(
        "--redis-password",
        action=on_off,
        help="Give the Redis p419 starts a generated password (kept in the data dir's redis/password).",
    )
    add("--demo", action="store_true", help="Run the bundled products app here, whatever this folder holds.")
    add("--app-dir", help="Working directory of the children and import root.")
    add(
        "--python",
        metavar="PATH",
        help="The project's interpreter or virtualenv (default: VIRTUAL_ENV, .venv/venv/env, poetry/pipenv/uv/pdm).",
    )
    add("--api", metavar="MODULE:ATTR", help="ASGI app to serve with uvicorn, e.g. main:app.")
    add("--api-command", help="Any other API server command (instead of --api).")
    add("--celery", metavar="MODULE[:ATTR]", help="Celery app, as for celery -A.")
    add("--ready-path", help="Path the API must answer to be ready (a 5xx: ready, with a warning).")
    add(
        "--grace",
        type=bounded(float, 0, 600),
        metavar="SECONDS",
        default=10.0,
        help="Seconds children get to stop before being killed (default: 10).",
    )
    add(
        "--ready-timeout",
        type=bounded(float, 1, 600),
        metavar="SECONDS",
        default=30.0,
        help="Seconds to wait for every child to be ready (default: 30).",
    )
    add("--dry-run", action="store_true", help="Print the plan (argv, environment) and exit.")
    return p


def main(argv: list[str]) -> None:
    """Parse, look around, plan, run; exits with the stack's code (130 after Ctrl+C)."""
    args = parser().parse_args(argv)
    from python419.platforms import detect_platform
    from python419.project import Flags, ProjectError, preflight
    from python419.supervisor.plan import UpOptions
    from python419.supervisor.run import UpError, find_project_python, make_plan, run

    flags = Flags(
        app_dir=args.app_dir,
        python=args.python,
        api=args.api,
        api_command=args.api_command,
        celery=args.celery,
        ready_path=args.ready_path,
        broker=args.broker,
        workers=args.workers,
        pool=args.pool,
        concurrency=args.concurrency,
        queues=tuple(q for q in args.queues.split(",") if q) if args.queues else None,
        reload=args.reload,
        beat=args.beat,
        flower=args.flower,
        redis_password=args.redis_password,
        demo=args.demo,
        only=tuple(part.strip() for part in args.only.split(",")) if args.only else None,
    )
    project, config = current(flags)
    try:
        found = find_project_python(project, detect_platform())  # one query, for the checks and the plan
        preflight(project, found.path)
    except ProjectError as exc:
        raise fail(str(exc), 2) from None
    except UpError as exc:
        raise fail(str(exc), exc.code) from None
    try:
        plan = make_plan(
            project,
            config,
            UpOptions(loglevel=args.loglevel, grace=args.grace),
            dry_run=args.dry_run,
            python=found,
        )
        if args.dry_run:
            from python419.supervisor.run import dry_run as show

            show(plan, out())
            return
        code = run(plan, stack_console, grace=args.grace, ready_timeout=args.ready_timeout)
    except UpError as exc:
        raise fail(str(exc), exc.code) from None
    exit_now(code)
