"""`p419 up` wired together: look around, plan, then run the manager with real processes and a printer."""

from __future__ import annotations

import importlib
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import python419
from python419.addresses import is_local_url, safe_url, with_parts
from python419.broker import make_embedded_folders
from python419.interpreter import InterpreterError, ProjectPython, require
from python419.platforms import Platform, detect_platform, stop_exit_code, supervisor_stop_signals
from python419.ports import held_port_message
from python419.project import Project, project_interpreter
from python419.redis_server import generated_password, redis_binary, redis_status, write_redis_config
from python419.runfiles import STOP_FILE, remove_redis_url, stack_id, take_restart_requests, write_redis_url
from python419.settings import Settings
from python419.supervisor import events as ev
from python419.supervisor.manager import Manager
from python419.supervisor.notify import systemd_notifier
from python419.supervisor.orphans import JobObject
from python419.supervisor.plan import (
    Plan,
    PlanError,
    UpOptions,
    build_plan,
    choose_broker,
    plan_lines,
)
from python419.supervisor.process import PRIVATE_UMASK, ProcessFactory, install_stop_handlers
from python419.supervisor.readiness import Probe
from python419.supervisor.reload import describe_changes, start_reloader
from python419.supervisor.state import StateError, UpLock

if TYPE_CHECKING:
    from rich.console import Console

    from python419.supervisor.printer import PlainConsole


class UpError(Exception):
    """`p419 up` cannot start; the message says why and what to do. `code`: 2 for a configuration the
    user must change, 1 for a state of the machine (a port taken, a stack already running)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def find_project_python(project: Project, platform: Platform, needs: set[str] | None = None) -> ProjectPython:
    """The project's interpreter, checked for what this run starts (one line and UpError when it lacks it)."""
    try:
        python = project_interpreter(project, platform, os.environ)
        require(python.interpreter, python.versions, project.needs() if needs is None else needs)
    except InterpreterError as exc:
        raise UpError(str(exc), 2) from None
    return python


def plan_platform(settings: Settings, dry_run: bool) -> tuple[Platform, str | None]:
    """P419_PLATFORM previews another OS's plan; a real run always runs this OS's plan, never a mix."""
    real = detect_platform()
    if dry_run or settings.platform == real:
        return settings.platform, None
    return real, (
        f"P419_PLATFORM={settings.platform} only previews a plan (p419 up --dry-run); "
        f"running the {real} plan on this {real} machine"
    )


def make_plan(
    project: Project,
    settings: Settings,
    options: UpOptions,
    *,
    dry_run: bool = False,
    python: ProjectPython | None = None,
) -> Plan:
    platform, platform_note = plan_platform(settings, dry_run)
    python = python or find_project_python(
        project, detect_platform()
    )  # on this machine, whatever the preview
    mode = settings.broker_mode
    url = settings.broker_redis_url
    status = "down" if mode == "embedded" else redis_status(url)
    answers = status == "answers"
    if status == "wants-password":
        raise UpError(
            f"the Redis at {safe_url(url)} requires a password: put it in REDIS_URL (redis://:PASSWORD@host:port/0)"
            "; for a Redis that p419 up started, it is in that data dir's redis/password"
        )
    binary = None
    if mode != "embedded" and not answers and is_local_url(url):
        binary = redis_binary(settings, platform)
        if binary is None and settings.redis_server:
            raise UpError(f"REDIS_SERVER={settings.redis_server} is not an executable file (nor on PATH)")
    try:
        broker = choose_broker(mode, url=url, answers=answers, redis_binary=binary, platform=platform)
        if broker.kind == "start-redis" and not urlsplit(url).password and project.redis_password:
            # Opt-in: by default a Redis we start is what every local Redis is, the project's URL exactly, on
            # loopback (the project's own clients use that URL). A dry run shows the password masked.
            password = "generated" if dry_run else generated_password(settings.redis_dir)
            settings = settings.replace(broker=with_parts(url, password=password))
        plan = build_plan(
            project,
            settings,
            options,
            platform=platform,
            python=python.path,
            own_python=sys.executable,
            flower=python.versions.flower is not None,
            python_line=python.line,
            broker=broker,
            redis_binary=binary,
            supervisor_pid=os.getpid(),
        )
    except PlanError as exc:
        raise UpError(str(exc)) from None
    if platform_note:
        plan.warnings.append(platform_note)
    return plan


def dry_run(plan: Plan, console: Console) -> None:
    for line in plan_lines(plan):
        console.print(line, soft_wrap=True, highlight=False, markup=False)


def watch_for_changes(
    plan: Plan, manager: Manager, emit: Callable[[ev.Event], None], stop: threading.Event
) -> None:
    """--reload: a .py file saved under the project restarts the children that run its code."""
    names = tuple(c.name for c in plan.children if c.kind in ("api", "worker", "beat") and c.watchdog)
    folders = [plan.project.app_dir]
    if plan.project.bundled:
        folders.append(Path(python419.__file__).parent)  # the bundled app's own code
    ignore = [plan.data_dir, Path(sys.prefix)]

    def changed(paths: list[str]) -> None:
        reason = describe_changes(paths, plan.project.app_dir, names)
        emit(ev.Note(f"reload: {reason}"))
        manager.request_restart(names, "reload")

    start_reloader(folders, ignore, changed, stop)
    emit(ev.Note(f"reload: watching .py files under {', '.join(map(str, folders))}"))


def warm_for_stop(plan: Plan) -> None:
    """Import redis-py while the stack idles, for the SHUTDOWN that stops our Redis. Nothing needs it before:
    Redis's readiness is its log line. Imported at the stop instead, it put ~0.08 s between the workers' exit and
    Redis's (scripts/bench, stop row: redis-server gone 0.48 s after Ctrl+C, the worker 0.40 s)."""
    if any(child.shutdown_url for child in plan.children) and "redis" not in sys.modules:
        threading.Thread(
            target=importlib.import_module, args=("redis",), name="p419-warm", daemon=True
        ).start()


def private_data_dir(plan: Plan) -> int | None:
    """The data dir and everything p419 writes in it are its owner's only (0700 / 0600), whatever the umask:
    the supervisor runs with umask 077 from here on. Returns the umask it was started with, which the
    project's own children keep (None on Windows, where the folder's ACL applies)."""
    if plan.platform == "windows":
        return None
    user_umask = os.umask(PRIVATE_UMASK)
    try:
        plan.data_dir.mkdir(parents=True, exist_ok=True)
        plan.data_dir.chmod(0o700)  # also a data dir made before, by an older p419 or by hand
    except OSError as exc:
        raise UpError(
            f"cannot write to the data dir {plan.data_dir} ({exc.strerror or exc}): p419 up needs a writable "
            "data dir (set P419_DATA_DIR)"
        ) from None
    return user_umask


def run(
    plan: Plan, console: Callable[[], Console | PlainConsole], *, grace: float, ready_timeout: float
) -> int:
    """`console`: made when the first children run (rich's import is not on the way to them)."""
    run_dir = plan.run_dir
    user_umask = private_data_dir(plan)
    lock = UpLock(run_dir, detect_platform())
    try:
        lock.acquire()  # held until we return; the OS releases it if we die
    except StateError as exc:  # already running, or a read-only data dir: one line
        raise UpError(str(exc)) from None
    for what, host, port, setting in plan.ports:  # before anything starts: name who holds it, in 1 line
        held = held_port_message(what, host, port, setting)
        if held:
            lock.release()
            raise UpError(held)
    redis_dir = plan.data_dir / "redis"
    try:
        make_embedded_folders(plan.target)  # the launcher only merges their names into the app's options
        if plan.by_kind("flower"):
            (plan.data_dir / "flower").mkdir(parents=True, exist_ok=True)  # its persisted state
        if plan.by_kind("redis"):
            redis_dir.mkdir(parents=True, exist_ok=True)
            write_redis_config(plan.target.url, redis_dir)
            write_redis_url(run_dir, plan.target.url)
    except OSError as exc:
        raise UpError(f"cannot write to the data dir {plan.data_dir}: {exc.strerror or exc}") from None
    stop_file = run_dir / STOP_FILE
    stop_file.unlink(missing_ok=True)

    lines: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()  # put from signal handlers too
    job, job_error = None, None
    if plan.orphan_guard == "job-object":
        try:
            job = JobObject()
        except OSError as exc:  # some sandboxes forbid jobs: run anyway, and say what that costs
            job_error = f"no Job Object ({exc}): children may outlive a supervisor that is killed hard"
    # systemd Type=notify (NOTIFY_SOCKET): READY=1 on StackReady. Made before the first spawn: it takes its
    # variables out of the environment the children inherit.
    notifier = systemd_notifier({c.name: c.kind for c in plan.children}, os.environ, os.getpid())
    factory = ProcessFactory(plan, os.environ, lambda n, line: lines.put((n, line)), job, user_umask)
    listeners: list[Callable[[ev.Event], None]] = []
    pending: list[ev.Event] = []  # what happens before the first children are spawned: said right after

    def emit(event: ev.Event) -> None:
        if not listeners:
            pending.append(event)
            return
        for listener in listeners:
            listener(event)

    def supervise() -> None:
        """The printer and the state file, made once the first children are spawned: their imports (rich,
        psutil: ~30 ms) then overlap the children's own start (scripts/bench, row 8)."""
        if listeners:
            return
        from python419.supervisor.printer import Printer
        from python419.supervisor.state import StateFile

        printer = Printer(console(), [c.name for c in plan.children], plan.logs_dir)
        state = StateFile(
            run_dir, os.getpid(), plan.api_url, plan.target.kind, plan.target.safe, stack_id(plan.data_dir)
        )
        closers.extend((printer.close, state.remove))
        listeners.extend((printer.handle, state.handle))
        if notifier is not None:
            listeners.append(notifier.handle)
        listeners.append(lambda event: warm_for_stop(plan) if isinstance(event, ev.StackReady) else None)
        for event in pending:
            emit(event)
        pending.clear()

    closers: list[Callable[[], None]] = []
    manager = Manager(
        plan,
        factory,
        Probe(factory.pid_of),
        emit,
        lines=lines,
        stop_requested=stop_file.exists,
        restart_requested=lambda: take_restart_requests(run_dir),
        reload=plan.project.reload,
        grace=grace,
        ready_timeout=ready_timeout,
        spawned=supervise,
    )

    def on_signal(signum: int, _: Any) -> None:
        name = signal.Signals(signum).name
        manager.request_stop(f"received {name}", stop_exit_code(name))

    install_stop_handlers(supervisor_stop_signals(plan.platform), on_signal)
    if lock.moved_aside:
        emit(ev.Note(f"the state file was corrupt: moved it aside to {lock.moved_aside}", loud=True))
    if not plan.project.bundled:
        emit(ev.Note(f"project: {plan.project.label}"))
        emit(ev.Note(plan.python_line))
    emit(ev.Note(plan.broker.message, loud=plan.broker.loud))
    if job_error:
        emit(ev.Note(job_error, loud=True))
    for note in plan.notes:
        emit(ev.Note(f"workers: {note}"))
    for warning in plan.warnings:
        emit(ev.Note(warning, loud=True))
    stop_watching = threading.Event()
    if plan.project.reload:
        watch_for_changes(plan, manager, emit, stop_watching)
    try:
        return manager.run()
    finally:
        supervise()  # also when the first spawn failed: what was said is printed
        stop_watching.set()
        remove_redis_url(run_dir)
        for close in closers:
            close()
        stop_file.unlink(missing_ok=True)
        lock.release()
