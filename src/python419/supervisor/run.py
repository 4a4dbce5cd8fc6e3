"""`p419 up` wired together: look around, plan, then run the manager with real processes and a printer."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from python419.broker import redis_answers
from python419.platforms import detect_platform, find_redis_server, supervisor_stop_signals
from python419.settings import Settings, safe_url
from python419.supervisor import events as ev
from python419.supervisor.manager import Manager, stop_exit_code
from python419.supervisor.orphans import JobObject
from python419.supervisor.plan import (
    Plan,
    PlanError,
    UpOptions,
    build_plan,
    choose_broker,
    is_local_redis,
    redis_config,
    redis_config_path,
)
from python419.supervisor.printer import Printer, plan_lines
from python419.supervisor.process import ProcessFactory, install_stop_handlers
from python419.supervisor.readiness import Probe
from python419.supervisor.state import STOP_FILE, StateError, StateFile, UpLock


class UpError(Exception):
    """`p419 up` cannot start; the message says why and what to do."""


def is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def make_plan(settings: Settings, options: UpOptions) -> Plan:
    url = str(settings.redis_url)
    answers = options.broker != "embedded" and redis_answers(url, timeout=0.3)
    binary = None
    if options.broker != "embedded" and not answers and is_local_redis(url):
        env = dict(os.environ)
        if settings.redis_server:  # from .env too, not only the environment
            env["REDIS_SERVER"] = settings.redis_server
        binary = find_redis_server(settings.platform, env, shutil.which, is_executable)
        if binary is None and env.get("REDIS_SERVER"):
            raise UpError(f"REDIS_SERVER={env['REDIS_SERVER']} is not an executable file (nor on PATH)")
    try:
        broker = choose_broker(
            options.broker,
            url=safe_url(url),
            answers=answers,
            redis_binary=binary,
            platform=settings.platform,
        )
    except PlanError as exc:
        raise UpError(str(exc)) from None
    return build_plan(
        settings,
        options,
        python=sys.executable,
        broker=broker,
        redis_binary=binary,
        supervisor_pid=os.getpid(),
    )


def write_redis_config(url: str, data_dir: Path) -> None:
    config = redis_config(url)
    if config is None:
        return
    path = redis_config_path(data_dir)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)  # it holds the password
    path.write_text(config, encoding="utf-8")


def dry_run(plan: Plan, console: Console) -> None:
    for line in plan_lines(plan, "windows" if plan.platform == "windows" else "posix"):
        console.print(line, soft_wrap=True, highlight=False, markup=False)


def run(plan: Plan, console: Console, *, grace: float, ready_timeout: float) -> int:
    run_dir = plan.data_dir / "run"
    lock = UpLock(run_dir, detect_platform())
    try:
        lock.acquire()  # held until we return; the OS releases it if we die
    except StateError as exc:  # already running, or a read-only data dir: one line
        raise UpError(str(exc)) from None
    run_dir.mkdir(parents=True, exist_ok=True)
    (plan.data_dir / "redis").mkdir(parents=True, exist_ok=True)
    if plan.by_kind("redis") and "REDIS_URL" in plan.env:
        write_redis_config(plan.env["REDIS_URL"], plan.data_dir)
    stop_file = run_dir / STOP_FILE
    stop_file.unlink(missing_ok=True)

    # Process-level decisions follow the OS we really run on; the plan may preview another (P419_PLATFORM).
    os_platform = detect_platform()
    lines: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()  # put from signal handlers too
    job, job_error = None, None
    if os_platform == "windows":
        try:
            job = JobObject()
        except OSError as exc:  # some sandboxes forbid jobs: run anyway, and say what that costs
            job_error = f"no Job Object ({exc}): children may outlive a supervisor that is killed hard"
    factory = ProcessFactory(
        os_platform, {**os.environ, **plan.env}, lambda n, line: lines.put((n, line)), job
    )
    printer = Printer(console, [c.name for c in plan.children], plan.data_dir / "logs")
    state = StateFile(run_dir, os.getpid(), plan.api_url, plan.env["P419_BROKER"])

    def emit(event: ev.Event) -> None:
        printer.handle(event)
        state.handle(event)

    manager = Manager(
        plan,
        factory,
        Probe(plan),
        emit,
        lines=lines,
        stop_requested=stop_file.exists,
        grace=grace,
        ready_timeout=ready_timeout,
    )

    def on_signal(signum: int, _: Any) -> None:
        name = signal.Signals(signum).name
        manager.request_stop(f"received {name}", stop_exit_code(name))

    install_stop_handlers(supervisor_stop_signals(os_platform), on_signal)
    if lock.moved_aside:
        emit(ev.Note(f"the state file was corrupt: moved it aside to {lock.moved_aside}", loud=True))
    emit(ev.Note(plan.broker.message, loud=plan.broker.loud))
    if job_error:
        emit(ev.Note(job_error, loud=True))
    emit(ev.Note(f"worker pool: {plan.pool} ({plan.pool_reason})"))
    for warning in (plan.pool_warning, plan.reload_warning):
        if warning:
            emit(ev.Note(warning, loud=True))
    try:
        return manager.run()
    finally:
        printer.close()
        state.remove()
        stop_file.unlink(missing_ok=True)
        lock.release()
