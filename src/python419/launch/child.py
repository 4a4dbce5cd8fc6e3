"""The thin launcher around a child's plain command line, in the project's own interpreter:

    PYTHON .../launch/__main__.py celery -A worker.celery worker --pool=solo --loglevel=info
    PYTHON .../launch/__main__.py uvicorn main:app --host 127.0.0.1 --port 8000

What follows the script is exactly what a user could type. Before handing over to Celery or uvicorn in this
same process, the launcher does only what a supervisor needs and the command cannot express:
- the orphan watchdog, and Windows' CTRL_BREAK and the stop file turned into a warm shutdown;
- on the embedded broker, the project's Celery app gets the transport's folders (Celery reads broker and
  result URLs from CELERY_BROKER_URL / CELERY_RESULT_BACKEND, but no transport options from the environment);
- a worker reports readiness on Celery's `worker_ready` signal, by writing its pid to the ready file;
- beat takes the one-beat-per-broker lock.
Every decision comes from the supervisor through `contract`'s variables. An app that cannot be loaded exits
with CONFIG_EXIT after one readable line: restarting would not help.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import contract
from .watchdog import start_from_env

CONFIG_EXIT = contract.CONFIG_EXIT
STOP_POLL = 0.2


class LaunchError(Exception):
    """The user's app cannot be loaded; the message says which and why."""


class Refused(LaunchError):
    """The child may not run here now (another stack's beat holds the broker's beat lock)."""


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


def direct_worker_args(args: list[str]) -> list[str] | None:
    """The worker's own arguments when a celery command line is `-A APP worker ...` and nothing else before
    `worker` (then the launcher can start Celery's `worker` command itself); None for anything else, which
    goes through the whole `celery` program. Pools that monkey-patch the interpreter (gevent, eventlet) need
    celery's own early patching, so they always take the long way."""
    if "worker" not in args:
        return None
    at = args.index("worker")
    head, rest = args[:at], args[at + 1 :]
    if not (
        (len(head) == 2 and head[0] in ("-A", "--app"))
        or (
            len(head) == 1
            and (head[0].startswith("--app=") or (head[0].startswith("-A") and head[0] != "-A"))
        )
    ):
        return None
    pool = option_value(rest, "-P", "--pool")
    if pool in ("gevent", "eventlet") or "--detach" in rest or "-D" in rest:
        return None
    return rest


def run_worker_command(app: Any, args: list[str]) -> None:
    """Celery's own `worker` command (its options, its checks, its exit status), without the `celery` group in
    front: that group imports every other sub-command and every installed plugin's (flower's web app among them,
    click-repl's prompt_toolkit) before it looks at its arguments. Measured CPU to import: celery.bin.celery
    0.46 s, celery.bin.worker 0.21 s; the worker is the last program of the stack to get ready. What the group
    does with `-A APP` alone is done here the same way: the app Celery's find_app found, the app's own worker
    options, CELERY_WORKER_* environment variables."""
    from celery.bin.base import CLIContext
    from celery.bin.worker import worker

    worker.params.extend(app.user_options.get("worker", []))
    worker.main(
        args=args,
        prog_name="celery worker",
        obj=CLIContext(app=app, no_color=None, workdir=None, quiet=False),
        auto_envvar_prefix="CELERY_WORKER",
    )


def configure_for_stack(app: Any, environ: Mapping[str, str]) -> None:
    """Give the project's app the transport options the supervisor chose (the embedded broker's folders). On
    Redis there are none: the app's own settings stand (its BRPOP keeps kombu's 1 s, since a warm stop no
    longer waits for it; see unblock_brpop)."""
    options = contract.transport_options(environ)
    if options:
        merged = dict(app.conf.broker_transport_options or {})
        merged.update(options)
        app.conf.broker_transport_options = merged


def report_ready(path: str) -> None:
    from celery.signals import worker_ready

    def on_ready(**_: Any) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(str(os.getpid()), encoding="utf-8")

    worker_ready.connect(on_ready, weak=False)


def take_beat_lock(app: str, environ: Mapping[str, str]) -> None:
    from .beatlock import BeatLockHeld, acquire

    folder = environ[contract.BEAT_LOCK]
    Path(folder).mkdir(parents=True, exist_ok=True)
    broker, url = environ.get(contract.BROKER, "redis"), environ.get(contract.CELERY_BROKER_URL, "")
    try:
        acquire(broker, url, folder, app, wait=float(environ.get(contract.GRACE) or 10.0))
    except BeatLockHeld as exc:
        raise Refused(str(exc)) from None


def stop_at_once_when_idle() -> None:
    """A warm stop that does not wait for the consumer's poll: once the worker is ready, SIGTERM (which the
    stop file and CTRL_BREAK also become) still runs Celery's warm-shutdown handler, and then, if no task is
    executing in this process (Celery's own `active_requests`), ends the consumer's wait at once. Measured on
    the embedded broker: kombu's synchronous loop polls in 2 s drains, and Ctrl+C took 4.1-4.4 s until the tree
    was gone; a task in progress still finishes first, as before. (Counting tasks with task_prerun/postrun
    receivers of our own cost ~2 % of a solo worker's CPU per message: two more signal dispatches a task.)"""
    from celery.exceptions import WorkerShutdown
    from celery.signals import worker_ready
    from celery.worker import state

    def wrap(sender: Any = None, **_: Any) -> None:
        celery_handler = signal.getsignal(signal.SIGTERM)
        flush_acks(sender, state)

        def on_term(signum: int, frame: Any) -> None:
            if callable(celery_handler):
                celery_handler(signum, frame)  # "Warm shutdown", worker_shutting_down, should_stop
            if not state.active_requests:
                unblock_brpop(sender)
                perform_pending(sender)  # a task that just finished: its ack goes out before we do
                raise WorkerShutdown(0)  # Celery's own way out of its loop: a clean stop, exit code 0

        signal.signal(signal.SIGTERM, on_term)

    worker_ready.connect(wrap, weak=False)


def perform_pending(consumer: Any) -> None:
    with contextlib.suppress(Exception):  # only an ack that would otherwise wait is at stake
        getattr(consumer, "perform_pending_operations", lambda: None)()


def flush_acks(consumer: Any, state: Any) -> None:
    """Celery < 5.5, on a transport without async I/O (the embedded broker): the synchronous loop sends a
    finished task's ack at the top of its next turn, but checks for a warm stop first, so the ack of the task
    that was finishing when the stop came never went out, and kombu put the message back: the next start ran
    it again (the Wine lane found it with Celery 5.3.6; plain `celery worker` 5.2.7-5.4.0 do the same). The
    check is made to send the pending acks first, as Celery 5.5 does."""
    original = state.maybe_shutdown

    def maybe_shutdown() -> None:
        asked = [state.should_stop, state.should_terminate]  # an exit code, 0 included (Celery's own test)
        if any(flag is not None and flag is not False for flag in asked):
            perform_pending(consumer)
        original()

    state.maybe_shutdown = maybe_shutdown


def unblock_brpop(consumer: Any) -> None:
    """End the BRPOP a stopping worker on Redis waits in, as if it had timed out, with Redis's own
    `CLIENT UNBLOCK id TIMEOUT` from a second connection: kombu closes a channel only after reading the reply of
    the BRPOP in flight (Redis may have popped a message for it, which kombu then hands back), so a warm stop sat
    out what was left of the poll. SIGTERM to exit of an idle solo worker, 0.25 s BRPOP: 0.08-0.39 s, median 0.20
    (10 runs), now 0.11-0.16 s; kombu's default 1 s BRPOP: 0.59-0.80 s (6 runs), now 0.09-0.19 s (10). So workers
    keep that 1 s, which wakes an idle worker a third as often (idle CPU over 10 s: 0.10 % vs 0.30 % at 0.25 s).
    A BRPOP that has already got its message is not blocked any more, and the command does nothing to it (a
    review's 300 trials of a publish racing the unblock: nothing lost, nothing delivered twice).
    The connection is found by its address in CLIENT LIST. Over a unix socket every client has the same one, so
    there, as on anything unexpected (another transport, Redis < 5, no CLIENT permission, kombu's internals
    changed), the stop waits out the BRPOP as kombu does: up to its 1 s."""
    try:
        channels = list(consumer.connection.transport.channels)
    except Exception:  # noqa: BLE001 - only a faster stop is at stake, never the stop itself
        return
    if channels and not all(hasattr(c, "_in_poll") for c in channels) and hasattr(channels[0], "client"):
        # A Redis channel without kombu's _in_poll: this kombu's internals differ. Step back, never break.
        print("p419: this kombu keeps no _in_poll: the warm stop waits out the BRPOP", file=sys.stderr)
        return
    for channel in channels:
        with contextlib.suppress(Exception):
            # kombu's _in_poll: False, or the connection its BRPOP was sent on
            in_poll = getattr(channel, "_in_poll", None)
            if in_poll:
                unblock_client_at(channel.client.connection_pool, in_poll._sock.getsockname())


def unblock_client_at(pool: Any, address: Any) -> None:
    """CLIENT UNBLOCK ... TIMEOUT for the client whose address (its socket's local address) is `address`, from a
    connection made like the pool's (host, password, TLS), with short timeouts, closed on the way out."""
    import redis

    if not isinstance(address, tuple):
        return  # a unix socket: no address tells one client from another
    host, port = address[:2]
    wanted = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # CLIENT LIST's form, IPv6 bracketed
    kwargs = pool.connection_kwargs | {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
    own = redis.ConnectionPool(pool.connection_class, **kwargs)
    try:
        other = redis.Redis(connection_pool=own)
        for client in other.client_list():
            if client.get("addr") == wanted:
                other.client_unblock(int(client["id"]))
    finally:
        own.disconnect()


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


def prepare(argv: list[str], environ: Mapping[str, str]) -> Any:
    """Everything before the hand-over; returns the Celery app it loaded (None: none). Raises LaunchError when
    the app cannot be loaded."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # the app dir: `celery -A main` imports from it, as celery does
    start_from_env(environ)  # only under `p419 up`
    warm_shutdown_on_ctrl_break()
    if environ.get(contract.STOP_FILE):
        watch_stop_file(environ[contract.STOP_FILE])
    program, app = argv[0], None
    if program == "celery":
        spec = celery_app_spec(argv) or environ.get(contract.CELERY_APP)
        if spec:
            app = load_celery_app(spec)
            configure_for_stack(app, environ)
        if environ.get(contract.READY_FILE):
            report_ready(environ[contract.READY_FILE])
        if "worker" in argv:
            stop_at_once_when_idle()
        if "beat" in argv and environ.get(contract.BEAT_LOCK):
            take_beat_lock(spec or "", environ)
    elif program == "uvicorn":
        # The API publishes tasks: its Celery app must use the stack's broker folders too.
        spec = environ.get(contract.CELERY_APP)
        if spec and contract.transport_options(environ):
            configure_for_stack(load_celery_app(spec), environ)
        target = next((a for a in argv[1:] if not a.startswith("-")), None)
        if target and "--factory" not in argv:
            load_asgi_app(target)
    return app


def _stopped_as_asked(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def import_chain(exc: BaseException) -> str:
    """Which import of the project's failed, and through which: `worker (line 3) → tasks_a (line 1) → tasks_b
    (line 1) → tasks_a (partially initialized)` for a circle; `main (line 5)` for a plain failing import."""
    from .app_probe import describe

    found = describe(exc)
    steps = [f"{frame['module']} (line {frame['line']})" for frame in found["chain"]]
    if found["partial"]:
        return "circular import: " + " → ".join([*steps, f"{found['partial']} (partially initialized)"])
    return ("while importing " + " → ".join(steps)) if steps else ""


def sigterm_ends_cleanly(windows: bool) -> bool:
    """Must the launcher turn a SIGTERM into a clean exit? On Windows, yes: uvicorn re-raises the signal that
    stopped it once its graceful shutdown is over, and a raised SIGTERM without a handler makes the C runtime
    end the process with exit code 3, uvicorn's own code for a failed start-up (the Wine lane: "api stopped
    with exit code 3" after every clean stop). On POSIX the process dies of the signal, which says the same."""
    return windows


def hand_over(argv: list[str], app: Any = None) -> None:
    program, args = argv[0], argv[1:]
    direct = direct_worker_args(args) if program == "celery" and app is not None else None
    if direct is not None and not app.user_options.get("preload"):
        run_worker_command(app, direct)
    elif program == "celery":
        from celery.__main__ import main as celery_main

        sys.argv = ["celery", *args]
        celery_main()
    elif program == "uvicorn":
        from uvicorn.main import main as uvicorn_main

        if sigterm_ends_cleanly(os.name == "nt"):
            # uvicorn puts this handler back after its shutdown, then raises the SIGTERM again: exit 0.
            signal.signal(signal.SIGTERM, _stopped_as_asked)

        uvicorn_main.main(args=args, prog_name="uvicorn")
    else:
        raise LaunchError(f"the launcher runs celery or uvicorn, not {program!r}")


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    if not argv:
        print("usage: PYTHON path/to/python419/launch celery|uvicorn ARGS...", file=sys.stderr)
        sys.exit(contract.USAGE_EXIT)
    if argv[0] == "send":  # p419 send TASK for a user's project
        from .send import main as send

        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        sys.exit(send(argv[1:], environ))
    try:
        app = prepare(argv, environ)
    except LaunchError as exc:
        cause = exc.__cause__
        if cause is not None and not isinstance(cause, SyntaxError):
            # The project's own code failed: the whole traceback for its log file, the gist on one line.
            lines = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
            sys.stderr.write("".join(f"{contract.LOG_ONLY}{line}\n" for line in lines.splitlines()))
            chain = import_chain(cause)
            if chain:
                exc = type(exc)(f"{exc} ({chain})")
        print(f"{contract.SAYS}{exc}", file=sys.stderr, flush=True)
        sys.exit(contract.REFUSED_EXIT if isinstance(exc, Refused) else CONFIG_EXIT)
    hand_over(argv, app)


if __name__ == "__main__":
    main()
