"""The thin launcher around a child's plain command line:

    python -m python419.launch celery -A worker.celery worker --pool=solo --loglevel=info
    python -m python419.launch uvicorn main:app --host 127.0.0.1 --port 8000

What follows `python419.launch` is exactly what a user could type. Before handing over to Celery or uvicorn
in this same process, the launcher does only what a supervisor needs and the command cannot express:
- the orphan watchdog (macOS) and Windows' CTRL_BREAK and stop file turned into a warm shutdown;
- on the embedded broker, the user's Celery app gets the transport's folders (Celery reads broker and
  result URLs from CELERY_BROKER_URL / CELERY_RESULT_BACKEND, but no transport options from the environment);
- a worker reports readiness on Celery's `worker_ready` signal, by writing its pid to the ready file.
An app that cannot be loaded exits with CONFIG_EXIT after one readable line: restarting would not help.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from python419 import stackenv

CONFIG_EXIT = 78  # EX_CONFIG (sysexits.h): the supervisor does not restart a child that exits with it
STOP_POLL = 0.2


class LaunchError(Exception):
    """The user's app cannot be loaded; the message says which and why."""


def load_celery_app(spec: str) -> Any:
    """The Celery app as `celery -A spec` finds it (Celery's own lookup)."""
    from celery import Celery
    from celery.app.utils import find_app

    try:
        app = find_app(spec)
    except SyntaxError as exc:
        raise LaunchError(f"{exc.filename}:{exc.lineno}: SyntaxError: {exc.msg}") from exc
    except Exception as exc:
        raise LaunchError(f"cannot load the Celery app {spec!r}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(app, Celery):
        raise LaunchError(f"{spec!r} is a {type(app).__name__}, not a Celery app")
    return app


def load_asgi_app(spec: str) -> Any:
    """The object uvicorn would serve; refused unless it is callable (an ASGI app or a factory)."""
    from uvicorn.importer import ImportFromStringError, import_from_string

    try:
        app = import_from_string(spec)
    except SyntaxError as exc:
        raise LaunchError(f"{exc.filename}:{exc.lineno}: SyntaxError: {exc.msg}") from exc
    except ImportFromStringError as exc:
        raise LaunchError(f"cannot load the ASGI app {spec!r}: {exc}") from exc
    except Exception as exc:
        raise LaunchError(f"importing the ASGI app {spec!r} fails: {type(exc).__name__}: {exc}") from exc
    if not callable(app):
        raise LaunchError(f"{spec!r} is a {type(app).__name__}, not an ASGI app")
    return app


def option_value(argv: list[str], short: str | None, long: str) -> str | None:
    """An option's value in a command line: `-A x`, `-Ax`, `--app x` or `--app=x` (None when absent)."""
    for i, arg in enumerate(argv):
        if arg == long or (short and arg == short):
            return argv[i + 1] if i + 1 < len(argv) else None
        if arg.startswith(long + "="):
            return arg.split("=", 1)[1]
        if short and arg.startswith(short) and len(arg) > len(short) and not arg.startswith("--"):
            return arg[len(short) :]
    return None


def celery_app_spec(argv: list[str]) -> str | None:
    """The value of -A/--app in a celery command line."""
    return option_value(argv, "-A", "--app")


def configure_for_stack(app: Any, environ: Mapping[str, str]) -> None:
    """Point the user's app at the stack's broker folders when it runs on the embedded broker."""
    if environ.get(stackenv.BROKER) != "embedded":
        return
    from python419.broker import embedded_target, make_embedded_folders
    from python419.settings import get_settings

    target = embedded_target(get_settings().embedded_dir)
    make_embedded_folders(target)
    options = dict(app.conf.broker_transport_options or {})
    options.update(target.transport_options)
    app.conf.broker_transport_options = options


def report_ready(path: str) -> None:
    from celery.signals import worker_ready

    def on_ready(**_: Any) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(str(os.getpid()), encoding="utf-8")

    worker_ready.connect(on_ready, weak=False)


def take_beat_lock(app: str, environ: Mapping[str, str]) -> None:
    from python419.beatlock import BeatLockHeld, acquire
    from python419.broker import runtime_target
    from python419.settings import get_settings

    Path(environ[stackenv.BEAT_LOCK]).mkdir(parents=True, exist_ok=True)
    try:
        acquire(runtime_target(get_settings(), environ), app)
    except BeatLockHeld as exc:
        raise LaunchError(str(exc)) from None


class _Activity:
    """Tasks executing in this process right now (the solo pool runs them in the main thread)."""

    running = 0


def stop_at_once_when_idle() -> None:
    """A warm stop that does not wait for the consumer's poll: once the worker is ready, SIGTERM (which the
    stop file and CTRL_BREAK also become) still runs Celery's warm-shutdown handler, and then, if no task is
    executing in this process, ends the consumer's wait at once. Measured on the embedded broker: kombu's
    synchronous loop polls in 2 s drains, and Ctrl+C took 4.1-4.4 s until the tree was gone; a task in progress
    still finishes first, as before."""
    from celery.exceptions import WorkerShutdown
    from celery.signals import task_postrun, task_prerun, worker_ready

    def started(**_: Any) -> None:
        _Activity.running += 1

    def finished(**_: Any) -> None:
        _Activity.running = max(0, _Activity.running - 1)

    def wrap(**_: Any) -> None:
        celery_handler = signal.getsignal(signal.SIGTERM)

        def on_term(signum: int, frame: Any) -> None:
            if callable(celery_handler):
                celery_handler(signum, frame)  # "Warm shutdown", worker_shutting_down, should_stop
            if _Activity.running == 0:
                raise WorkerShutdown(0)  # Celery's own way out of its loop: a clean stop, exit code 0

        signal.signal(signal.SIGTERM, on_term)

    task_prerun.connect(started, weak=False)
    task_postrun.connect(finished, weak=False)
    worker_ready.connect(wrap, weak=False)


def watch_stop_file(path: str, interval: float = STOP_POLL) -> threading.Thread:
    """A warm stop that needs no console: when the supervisor creates the file, act as on SIGTERM (Celery's
    warm shutdown, uvicorn's graceful stop). Used where CTRL_BREAK cannot reach us (no shared console:
    pythonw, a service, Wine) and on every OS when the supervisor prefers it."""
    stop = Path(path)

    def watch() -> None:
        while not stop.exists():
            threading.Event().wait(interval)
        signal.raise_signal(signal.SIGTERM)

    thread = threading.Thread(target=watch, name="p419-stop-file", daemon=True)
    thread.start()
    return thread


def warm_shutdown_on_ctrl_break() -> None:
    """Windows: `p419 up` stops a child with CTRL_BREAK_EVENT; make that the same as SIGTERM."""
    if hasattr(signal, "SIGBREAK"):
        signal.signal(signal.SIGBREAK, lambda *_: signal.raise_signal(signal.SIGTERM))


def prepare(argv: list[str], environ: Mapping[str, str]) -> None:
    """Everything before the hand-over. Raises LaunchError when the app cannot be loaded."""
    from python419.platforms import detect_platform
    from python419.supervisor.orphans import start_watchdog_from_env

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # the app dir: `celery -A main` imports from it, as celery does
    start_watchdog_from_env(detect_platform(), dict(environ))  # only under `p419 up`
    warm_shutdown_on_ctrl_break()
    if environ.get(stackenv.STOP_FILE):
        watch_stop_file(environ[stackenv.STOP_FILE])
    program = argv[0]
    if program == "celery":
        spec = celery_app_spec(argv) or environ.get(stackenv.CELERY_APP)
        if spec:
            configure_for_stack(load_celery_app(spec), environ)
        if environ.get(stackenv.READY_FILE):
            report_ready(environ[stackenv.READY_FILE])
        if "worker" in argv:
            stop_at_once_when_idle()
        if "beat" in argv and environ.get(stackenv.BEAT_LOCK):
            take_beat_lock(spec or "", environ)
    elif program == "uvicorn":
        # The API publishes tasks: its Celery app must use the stack's broker folders too.
        spec = environ.get(stackenv.CELERY_APP)
        if spec and environ.get(stackenv.BROKER) == "embedded":
            configure_for_stack(load_celery_app(spec), environ)
        target = next((a for a in argv[1:] if not a.startswith("-")), None)
        if target and "--factory" not in argv:
            load_asgi_app(target)


def hand_over(argv: list[str]) -> None:
    program, args = argv[0], argv[1:]
    if program == "celery":
        from celery.__main__ import main as celery_main

        sys.argv = ["celery", *args]
        celery_main()
    elif program == "uvicorn":
        from uvicorn.main import main as uvicorn_main

        uvicorn_main.main(args=args, prog_name="uvicorn")
    else:
        raise LaunchError(f"the launcher runs celery or uvicorn, not {program!r}")


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    if not argv:
        print("usage: python -m python419.launch celery|uvicorn ARGS...", file=sys.stderr)
        sys.exit(2)
    try:
        prepare(argv, environ)
    except LaunchError as exc:
        cause = exc.__cause__
        if cause is not None and not isinstance(cause, SyntaxError):
            # The user's own code failed: its last frames say where.
            tail = traceback.format_exception(type(cause), cause, cause.__traceback__, limit=-3)
            sys.stderr.write("".join(tail))
        print(f"p419: {exc}", file=sys.stderr, flush=True)
        sys.exit(CONFIG_EXIT)
    hand_over(argv)


if __name__ == "__main__":
    main()
