"""What `p419 up` will run: a pure function of the project, the settings, the options and what was found on
the machine. The plan is what runs: `--dry-run` prints it, the process layer executes it as it is (argv,
environment, working directory, creation flags, stop method), and nothing downstream decides again.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from python419.addresses import http_url, is_local_url, probe_host, safe_url
from python419.broker import BrokerTarget, embedded_target, redis_target
from python419.launch import contract
from python419.platforms import (
    Platform,
    creation_flags,
    orphan_guard,
    starts_new_session,
    stop_method,
)
from python419.project import Project
from python419.redis_server import REDIS_READY_LINE, redis_address, redis_argv, redis_install_hint
from python419.settings import BrokerMode, Settings
from python419.workers import plan_group, worker_command

Kind = Literal["redis", "step", "api", "worker", "beat", "flower"]
ReadyKind = Literal["http", "tcp", "file"]

# Stop order, in waves: everything that uses the broker stops together (workers warmly: each finishes the task in
# hand, publishing its result; the API finishes the requests in flight, whose products are in the outbox anyway),
# then the broker, once they are all gone. Measured with scripts/bench --only stop: the old one-kind-at-a-time
# order (worker, then API, then Redis) took 0.84 s from Ctrl+C to an empty tree, 2.1x honcho's 0.40 s, because
# the API's 0.18 s stop came after the worker's 0.3 s instead of beside it.
STOP_WAVES: tuple[tuple[Kind, ...], ...] = (("beat", "worker", "flower", "api"), ("redis",))
FLOWER_PORT = 5555


@dataclass(frozen=True)
class UpOptions:
    loglevel: str = "info"
    grace: float = 10.0  # seconds a child gets for its warm stop, from us or, orphaned, from its watchdog


@dataclass(frozen=True)
class BrokerDecision:
    kind: Literal["reuse-redis", "start-redis", "remote-redis", "embedded"]
    message: str
    loud: bool = False  # the user should notice: say it in colour


class PlanError(Exception):
    """The requested stack cannot run here; the message says what to do."""


@dataclass(frozen=True)
class Readiness:
    """How the supervisor knows a child is ready, and that the server answering is this child."""

    kind: ReadyKind
    target: str  # an http URL, host:port, or a file path
    line: str | None = None  # probed only once the child has printed a line containing this (any case)

    def said_by(self, line: str) -> bool:
        return self.line is not None and self.line.casefold() in line.casefold()


@dataclass(frozen=True)
class ChildSpec:
    name: str
    kind: Kind
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # on top of the plan's env for every child
    cwd: Path | None = None
    ready: Readiness | None = None
    stop_file: Path | None = None  # a warm stop without a console (the launcher watches it)
    shutdown_url: str | None = None  # a Redis we started: stopped by its SHUTDOWN command, then the signal
    group: str | None = None  # the worker group
    private: bool = False  # what it writes is its owner's only (umask 077): Redis and the bundled app
    timeout: float | None = None  # a one-shot step: killed with its tree after this long

    @property
    def watchdog(self) -> bool:
        """Runs our launcher, whose watchdog stops it warmly (and its tree) when the supervisor dies."""
        return contract.runs_launcher(self.argv)

    @property
    def ready_file(self) -> Path | None:
        return Path(self.ready.target) if self.ready and self.ready.kind == "file" else None


@dataclass(frozen=True)
class Plan:
    platform: Platform
    project: Project
    broker: BrokerDecision
    target: BrokerTarget
    children: list[ChildSpec]
    env: dict[str, str]  # what every child gets, on top of the env files and the supervisor's environment
    env_files: tuple[Path, ...]
    notes: list[str]  # what the user should know about the choices (pools, reload)
    warnings: list[str]
    creation_flags: int
    new_session: bool
    stop: str
    orphan_guard: str
    api_url: str
    ports: list[tuple[str, str, int, str]]  # (child, host, port, setting) our children will listen on
    data_dir: Path
    run_dir: Path
    logs_dir: Path
    python_line: str = ""  # which interpreter runs the children, why, and what it has
    steps: list[ChildSpec] = field(default_factory=list)  # one-shot, in order, once the broker is ready
    python: str = ""  # the project's interpreter

    def by_kind(self, kind: Kind) -> list[ChildSpec]:
        return [c for c in self.children if c.kind == kind]


def choose_broker(
    mode: BrokerMode, *, url: str, answers: bool, redis_binary: str | None, platform: Platform
) -> BrokerDecision:
    shown = safe_url(url)
    if mode == "embedded":
        return BrokerDecision("embedded", "embedded broker (--broker embedded): no Redis server needed")
    if answers:
        return BrokerDecision(
            "reuse-redis", f"Redis already answers at {shown}: reusing it (it will be left running)"
        )
    if not is_local_url(url):
        return BrokerDecision("remote-redis", f"using the remote Redis at {shown} (not started by p419)")
    if redis_binary:
        return BrokerDecision("start-redis", f"starting {redis_binary} for {shown}")
    if mode == "redis":
        raise PlanError(f"no Redis server found to start for {shown}: {redis_install_hint(platform)}")
    return BrokerDecision(
        "embedded",
        "NO REDIS SERVER FOUND: running on the embedded broker (files under the data dir), which is fine for "
        f"development. For a real broker: {redis_install_hint(platform)}",
        loud=True,
    )


def flower_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("flower") is not None


def launcher(python: str) -> list[str]:
    return contract.launcher_argv(python)


def stack_env(project: Project, target: BrokerTarget, data_dir: Path, platform: Platform) -> dict[str, str]:
    """What p419 gives every child of the project, under `p419 up` and from the verbs that run one alone
    (`p419 worker`, `api`, `send`, the doctor's probe): the broker, the data dir, the app, the env files."""
    return {
        # Children write to a pipe; without this Windows encodes it in the ANSI code page.
        "PYTHONIOENCODING": "utf-8",
        "PYTHONUNBUFFERED": "1",  # lines reach the printer as they are written
        "P419_DATA_DIR": str(data_dir),
        **target.child_env(),
        contract.CELERY_APP: project.celery,
        contract.ENV_FILES: _pathsep(platform).join(str(p) for p in project.env_files),
    }


def build_plan(
    project: Project,
    settings: Settings,
    options: UpOptions,
    *,
    platform: Platform,
    python: str,
    own_python: str,
    broker: BrokerDecision,
    redis_binary: str | None,
    supervisor_pid: int,
    flower: bool | None = None,
    python_line: str = "",
) -> Plan:
    """`flower`: the project's interpreter has Flower (None: ask p419's own)."""
    data_dir = settings.data_dir
    run_dir = settings.run_dir
    target = (
        embedded_target(settings.embedded_dir)
        if broker.kind == "embedded"
        else redis_target(settings.broker_redis_url)
    )
    env = {
        **stack_env(project, target, data_dir, platform),
        contract.SUPERVISOR_PID: str(supervisor_pid),
        contract.GRACE: f"{options.grace:g}",
    }
    notes: list[str] = []
    warnings: list[str] = []
    children: list[ChildSpec] = []
    cwd = project.app_dir
    stop = stop_method(platform)

    def stop_file(name: str) -> Path | None:
        # Windows: CTRL_BREAK needs a shared console; the stop file works without one.
        return run_dir / f"{name}.stop" if stop.kind == "ctrl-break" else None

    only = project.only
    wants = lambda part: only is None or part in only  # noqa: E731
    if only is not None:
        # A second machine joining a stack: everything it needs must already run somewhere else.
        if broker.kind == "embedded":
            raise PlanError(
                f"--only {','.join(only)} cannot use the embedded broker: it is a folder on this machine and "
                "cannot span hosts; set REDIS_URL (or --broker redis://HOST:PORT/0) to the stack's Redis"
            )
        if broker.kind == "start-redis":
            raise PlanError(
                f"--only {','.join(only)} joins a running stack, but no Redis answers at "
                f"{safe_url(target.url)}: start the whole stack first, or point REDIS_URL at its Redis"
            )
    if broker.kind == "start-redis" and redis_binary:
        argv = redis_argv(redis_binary, target.url, settings.redis_dir)
        host, port = redis_address(target.url)
        if orphan_guard(platform) == "watchdog":
            # No parent-death signal on macOS, and redis-server runs no watchdog of ours: wrap it in one.
            argv = [own_python, "-m", "python419.supervisor.guard", *argv]
        children.append(
            ChildSpec(
                "redis",
                "redis",
                argv,
                ready=Readiness("tcp", f"{host}:{port}", line=REDIS_READY_LINE),
                shutdown_url=target.url,
                private=True,  # its AOF: every task queued, in clear
            )
        )

    steps: list[ChildSpec] = []
    if only is None or "steps" in only:
        for step in project.steps:
            # `python ...` and {python}: the project's interpreter; other commands (alembic) from its
            # environment's scripts first, as an activated virtualenv would find them (see child_environment).
            argv = [filled(part, {"{python}": python}) for part in step.command]
            if argv[0] in ("python", "python3"):
                argv[0] = python
            steps.append(ChildSpec(step.name, "step", argv, cwd=cwd, timeout=step.timeout))

    api_url = http_url(settings.api_host, settings.api_port)
    ready_url = http_url(probe_host(settings.api_host), settings.api_port) + project.ready_path
    if not wants("api"):
        pass
    elif project.api_command:
        # {python}: the project's interpreter; {host}, {port}: the API's address (p419 init writes them for a
        # server other than uvicorn: hypercorn, granian, fastapi run).
        fill = {"{python}": python, "{host}": settings.api_host, "{port}": str(settings.api_port)}
        children.append(
            ChildSpec(
                "api",
                "api",
                [filled(part, fill) for part in project.api_command],
                cwd=cwd,
                ready=Readiness("tcp", f"{probe_host(settings.api_host)}:{settings.api_port}"),
            )
        )
    elif project.api:
        argv = [*launcher(python), "uvicorn", project.api, "--host", settings.api_host]
        argv += ["--port", str(settings.api_port)]
        # No uvicorn --reload, on any OS: with --reload p419 restarts this process itself (supervisor/reload.py).
        children.append(
            ChildSpec(
                "api", "api", argv, cwd=cwd, ready=Readiness("http", ready_url), stop_file=stop_file("api")
            )
        )

    has_flower = flower_installed() if flower is None else flower
    events = project.flower and has_flower  # Flower shows what task events say
    for group in project.workers if wants("workers") else ():
        group_plan = plan_group(platform, group)
        warnings.extend(group_plan.warnings)
        notes.append(group_plan.note)
        for n in range(1, group_plan.processes + 1):
            name = f"{group.name}{n}"
            ready = run_dir / f"{name}.ready"
            argv = worker_command(
                launcher(python), project.celery, group_plan, options.loglevel, f"{name}@%h", events=events
            )
            children.append(
                ChildSpec(
                    name,
                    "worker",
                    argv,
                    env={contract.READY_FILE: str(ready)},
                    cwd=cwd,
                    ready=Readiness("file", str(ready)),
                    stop_file=stop_file(name),
                    group=group.name,
                )
            )
    if project.beat and wants("beat"):
        beat_dir = data_dir / "beat"
        argv = [*launcher(python), "celery", "-A", project.celery, "beat", f"--loglevel={options.loglevel}"]
        # The schedule under the data dir, no pid file: a stale celerybeat.pid in the project folder kept beat
        # from starting again after a crash, and broke on Windows (celery#5911). One beat per broker is
        # guarded by the launcher's lock instead (python419/launch/beatlock.py).
        argv += ["--schedule", str(beat_dir / "celerybeat-schedule")]
        children.append(
            ChildSpec(
                "beat",
                "beat",
                argv,
                env={contract.BEAT_LOCK: str(beat_dir)},
                cwd=cwd,
                stop_file=stop_file("beat"),
            )
        )
    if project.flower and wants("flower"):
        if not has_flower:
            warnings.append(
                f"flower = true, but Flower is not installed: {python} -m pip install flower (then p419 up again)"
            )
        else:
            flower_dir = data_dir / "flower"
            argv = [*launcher(python), "celery", "-A", project.celery, "flower", "--address=127.0.0.1"]
            argv += [f"--port={FLOWER_PORT}", "--persistent=True", f"--db={flower_dir / 'flower.db'}"]
            flower_ready = Readiness("http", f"http://127.0.0.1:{FLOWER_PORT}/healthcheck")
            children.append(
                ChildSpec(
                    "flower", "flower", argv, cwd=cwd, ready=flower_ready, stop_file=stop_file("flower")
                )
            )
    for child in children:
        if child.stop_file is not None:
            child.env[contract.STOP_FILE] = str(child.stop_file)
    if project.bundled:  # its database, WAL and heartbeats live in the data dir: the owner's only
        children = [replace(c, private=True) if c.kind != "flower" else c for c in children]
    return Plan(
        platform=platform,
        project=project,
        broker=broker,
        target=target,
        children=children,
        env=env,
        env_files=project.env_files,
        notes=notes,
        warnings=warnings,
        creation_flags=creation_flags(platform),
        new_session=starts_new_session(platform),
        stop=stop.kind,
        orphan_guard=orphan_guard(platform),
        api_url=api_url,
        ports=listen_ports(children, settings, target.url),
        data_dir=data_dir,
        run_dir=run_dir,
        logs_dir=settings.logs_dir,
        python_line=python_line,
        steps=steps,
        python=python,
    )


def filled(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def listen_ports(
    children: list[ChildSpec], settings: Settings, redis_url: str
) -> list[tuple[str, str, int, str]]:
    """The ports this plan's children will bind: checked free before anything starts."""
    ports = []
    kinds = {c.kind for c in children}
    if "redis" in kinds:
        parts = urlsplit(redis_url)
        ports.append(("redis", parts.hostname or "127.0.0.1", parts.port or 6379, "REDIS_URL"))
    if "api" in kinds:
        ports.append(("api", settings.api_host, settings.api_port, "P419_API_PORT"))
    if "flower" in kinds:
        ports.append(("flower", "127.0.0.1", FLOWER_PORT, "the flower port"))
    return ports


def _pathsep(platform: Platform) -> str:
    return ";" if platform == "windows" else ":"


def command_line(argv: list[str], platform: Platform) -> str:
    """argv as the platform's shell would take it."""
    return subprocess.list2cmdline(argv) if platform == "windows" else shlex.join(argv)


SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "KEY")


def shown_value(name: str, value: str) -> str:
    """An environment value fit to print: URLs without their password, secrets masked."""
    if any(word in name.upper() for word in SECRET_WORDS):
        return "***"
    return safe_url(value) if "://" in value else value


def plan_lines(plan: Plan) -> list[str]:
    """`p419 up --dry-run`: everything the plan will do, in words a user can check."""
    env = " ".join(f"{k}={shown_value(k, v)}" for k, v in sorted(plan.env.items()))
    lines = [
        f"project: {plan.project.label}"
        + (f" ({plan.project.config_path})" if plan.project.config_path else ""),
        f"platform: {plan.platform}",
        *([plan.python_line] if plan.python_line else []),
        f"broker: {plan.broker.message}",
        *(f"workers: {note}" for note in plan.notes),
        *(f"warning: {warning}" for warning in plan.warnings),
        f"stop: {plan.stop}; orphans: {plan.orphan_guard}; creation flags: {plan.creation_flags:#x}",
        f"data dir: {plan.data_dir}",
        "env files (read at each start, if present): " + (", ".join(map(str, plan.env_files)) or "none"),
        f"environment for every child: {env}",
        *(
            [f"[env] of the config (the shell's environment wins over it): {project_env}"]
            if (
                project_env := " ".join(
                    f"{k}={shown_value(k, v)}" for k, v in sorted(plan.project.env.items())
                )
            )
            else []
        ),
    ]
    for step in plan.steps:
        lines.append(f"step {step.name}: {command_line(step.argv, plan.platform)}")
        lines.append(
            f"{' ' * (5 + len(step.name))}  once the broker is ready, before the rest; killed after {step.timeout:g}s"
        )
    for child in plan.children:
        lines.append(f"{child.name}: {command_line(child.argv, plan.platform)}")
        pad = " " * len(child.name)
        if child.cwd is not None:
            lines.append(f"{pad}  cwd: {child.cwd}")
        if child.env:
            lines.append(f"{pad}  env: " + " ".join(f"{k}={v}" for k, v in child.env.items()))
        if child.ready is not None:
            said = f' once it prints "{child.ready.line}"' if child.ready.line else ""
            lines.append(f"{pad}  ready: {child.ready.kind} {child.ready.target}{said}")
    return lines
