"""The only part of the supervisor that touches the OS: start a child, read its output, stop it, kill its tree.

Every OS difference was decided by the plan (from `python419.platforms`, pure); this module applies it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from python419.platforms import detect_platform
from python419.redis_server import redis_shutdown
from python419.settings import read_env_files
from python419.supervisor.orphans import JobObject, pdeathsig_for, pdeathsig_preexec, spawn_in_job
from python419.supervisor.plan import ChildSpec, Plan, stack_env

if TYPE_CHECKING:
    import psutil

    from python419.broker import BrokerTarget
    from python419.project import Project
    from python419.settings import Settings

LineSink = Callable[[str, str], None]
PRIVATE_UMASK = 0o077  # files 0600, folders 0700
# Given to the sink for "nothing to print, but look around now": a child's output ended because it exited (or a
# stop was asked). The manager then notices an exit at once instead of on its next poll, 50 ms later at most:
# measured with scripts/bench --only stop, the two polls (after the workers, after Redis) were ~0.05 s of the
# Ctrl+C to empty-tree time.
WAKE = ("", "")
EXIT_WAIT = 1.0  # after the end of a child's output, how long the pump waits for its exit status


class Child(Protocol):
    """What the manager needs from a running child (real or fake)."""

    pid: int

    def poll(self) -> int | None: ...
    def stop(self) -> None: ...
    def kill_tree(self) -> None: ...


class OsChild:
    def __init__(self, spec: ChildSpec, popen: subprocess.Popen[bytes], stop: str) -> None:
        self.spec, self.popen, self.stop_kind = spec, popen, stop
        self.pid = popen.pid
        self._known: dict[int, psutil.Process] = {}  # filled at the stop: just spawned, it has no children

    def poll(self) -> int | None:
        return self.popen.poll()

    def remember_descendants(self) -> None:
        """Grandchildren are reparented when a child dies; remember them while we can still see them (psutil is
        imported here, at a stop, not before the first child: ~7 ms of `p419 up`'s start)."""
        import psutil

        if self.popen.poll() is not None and not self._known:
            return  # reaped before we looked: its pid may be anyone's now
        try:
            root = psutil.Process(self.pid)
            for proc in [root, *root.children(recursive=True)]:
                self._known.setdefault(proc.pid, proc)
        except psutil.Error:
            pass

    def stop(self) -> None:
        """Ask for a warm shutdown the way the plan says: a Redis we started gets its SHUTDOWN command; others
        SIGTERM on POSIX, and on Windows the stop file (works without a shared console) and CTRL_BREAK_EVENT
        to the child's process group."""
        self.remember_descendants()
        if self.popen.poll() is not None:
            return
        if self.spec.shutdown_url is not None and redis_shutdown(self.spec.shutdown_url):
            return  # on every OS, and 0.1 s sooner than its SIGTERM
        if self.spec.stop_file is not None:
            with contextlib.suppress(OSError):
                self.spec.stop_file.touch()
        if self.stop_kind == "ctrl-break":
            # Fails without a shared console (pythonw, a service; WinError 6/12 under Wine): the stop file
            # above still reaches a launcher child, and anything else is killed after the grace period.
            with contextlib.suppress(OSError):
                os.kill(self.pid, getattr(signal, "CTRL_BREAK_EVENT", 1))
        else:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGTERM)

    def kill_tree(self) -> None:
        import psutil

        self.remember_descendants()
        for proc in self._known.values():
            try:
                if proc.is_running():  # also guards against a recycled pid
                    proc.kill()
            except psutil.Error:
                pass
        if self.popen.poll() is None:
            with contextlib.suppress(OSError):
                self.popen.kill()


def child_environment(plan: Plan, spec: ChildSpec, base: Mapping[str, str]) -> dict[str, str]:
    """A child of `p419 up`: `project_environment` with the plan's variables and then the child's own."""
    python = plan.python if spec.kind != "redis" else None
    return project_environment(
        plan.env_files, plan.project.env, base, {**plan.env, **spec.env}, python=python, cwd=spec.cwd
    )


def verb_environment(
    project: Project,
    settings: Settings | None,
    target: BrokerTarget,
    python: str,
    environ: Mapping[str, str],
) -> dict[str, str]:
    """A process of the project that a verb runs alone (`p419 worker`, `api`, `send TASK`, the doctor's probe),
    on `target` (the running stack's broker): what `p419 up` would give it, short of the supervisor's own.
    `settings` None: invalid ones (the doctor still probes the app; it reports them apart)."""
    data_dir = settings.data_dir if settings is not None else project.own_data_dir
    stack = stack_env(project, target, data_dir, detect_platform())
    return project_environment(
        project.env_files, project.env, environ, stack, python=python, cwd=project.app_dir
    )


def project_environment(
    env_files: Iterable[Path],
    config_env: Mapping[str, str],
    base: Mapping[str, str],
    stack: Mapping[str, str],
    *,
    python: str | None,
    cwd: Path | None,
) -> dict[str, str]:
    """The one rule for the environment of a process of the project (`p419 up`'s children, `p419 worker`,
    `api`, `send`, the doctor's probe): env files (re-read at each start, so an edit applies on restart) < the
    config's [env] < `base`, the environment p419 was started with (as for every key: the environment over the
    config file) < `stack`, p419's own variables. The project's scripts (its `python`'s folder) come first on
    PATH, the app dir (`cwd`) first on PYTHONPATH."""
    env = read_env_files(env_files)
    env.update(config_env)
    env.update(base)
    env.update(stack)
    if python:
        # The project's environment's scripts first (alembic, hypercorn), as an activated virtualenv has them.
        scripts = os.path.dirname(python)
        env["PATH"] = os.pathsep.join(p for p in (scripts, env.get("PATH", "")) if p)
    if cwd is not None:
        # The app dir first on the import path, as `celery -A`/uvicorn expect when run from it.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(cwd), base.get("PYTHONPATH", "")) if p)
    return env


class ProcessFactory:
    """Starts the plan's children for real, as the plan says. `job` is the Windows Job Object."""

    def __init__(
        self,
        plan: Plan,
        base_env: Mapping[str, str],
        sink: LineSink,
        job: JobObject | None,
        user_umask: int | None = None,
    ) -> None:
        self.plan, self.base_env, self.sink, self.job = plan, dict(base_env), sink, job
        self.user_umask = user_umask  # the umask p419 was started with: the project's children keep it
        # Linux: children with our watchdog (the launcher) stop warmly on SIGTERM; others get SIGKILL.
        self._preexec = (
            {watched: pdeathsig_preexec(pdeathsig_for(watched)) for watched in (True, False)}
            if plan.orphan_guard == "pdeathsig"
            else {}
        )
        self.current: dict[str, OsChild] = {}

    def pid_of(self, name: str) -> int | None:
        child = self.current.get(name)
        return child.pid if child is not None else None

    def __call__(self, spec: ChildSpec) -> OsChild:
        options: dict[str, Any] = {}
        if self.plan.creation_flags:
            options["creationflags"] = self.plan.creation_flags
        if self.plan.new_session:
            options["start_new_session"] = True
        if self.user_umask is not None:  # POSIX; the supervisor itself runs with PRIVATE_UMASK
            options["umask"] = PRIVATE_UMASK if spec.private else self.user_umask
        if self._preexec.get(spec.watchdog):
            options["preexec_fn"] = self._preexec[spec.watchdog]
        if spec.stop_file is not None:
            spec.stop_file.unlink(missing_ok=True)
        popen = spawn_in_job(
            self.job,
            spec.argv,
            suspended=self.plan.orphan_guard == "job-object",
            env=child_environment(self.plan, spec, self.base_env),
            cwd=spec.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            **options,
        )
        assert popen.stdout is not None
        threading.Thread(target=_pump, args=(spec.name, popen, self.sink), daemon=True).start()
        child = self.current[spec.name] = OsChild(spec, popen, self.plan.stop)
        return child


def _pump(name: str, popen: subprocess.Popen[bytes], sink: LineSink) -> None:
    stream = popen.stdout
    assert stream is not None
    for raw in iter(stream.readline, b""):
        sink(name, raw.decode("utf-8", errors="replace").rstrip("\r\n"))
    stream.close()
    # The output ends as the process exits (or a grandchild still holds it: then this only waits a while).
    with contextlib.suppress(subprocess.TimeoutExpired):
        popen.wait(EXIT_WAIT)
    sink(*WAKE)


def install_stop_handlers(names: list[str], handler: Callable[[int, Any], None]) -> None:
    for name in names:
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, handler)
