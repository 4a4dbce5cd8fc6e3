"""The `p419 export` and `p419 service` Typer commands: parse, call one function, print, exit.

Imported by every `p419` invocation (its --help too): only typer here; the rest is imported by the command
that runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from python419.production.service import Host
    from python419.production.systemd import UnitOptions
    from python419.project import Project

export_app = typer.Typer(
    help="Write what runs the project beyond a terminal: a systemd unit, a docker-compose.yml.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
service_app = typer.Typer(
    help="Install and drive the project's service: a systemd unit (Linux), a Windows service (Windows).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@dataclass(frozen=True)
class ServiceRequest:
    """What `p419 export systemd` and `p419 service install` were asked for, as one value from the command
    line to the unit (Linux) or the Windows service."""

    name: str | None = None
    user: bool = False  # a user unit (Linux); the service runs as this user (Windows)
    watchdog: float | None = None
    grace: float = 10.0
    ready_timeout: float = 30.0
    redis_password: bool = True
    python: str | None = None
    broker: str | None = None
    run_as: str | None = None

    def refusal(self) -> str | None:
        """Why this cannot be installed as asked, or None. A password in --broker would be written where other
        users read it: the unit file (0644), the Windows service's registry entry and its log."""
        from urllib.parse import urlsplit

        try:
            password = urlsplit(self.broker).password if self.broker and "://" in self.broker else None
        except ValueError:
            password = None
        if password:
            return (
                "--broker holds a password, which the service would keep where other users can read it: put the "
                "URL in P419_BROKER (or REDIS_URL) in the project's env file instead, and leave --broker out"
            )
        return None


NAME = typer.Option(None, "--name", help="The unit's name (default: p419-<the project's folder>).")
USER_UNIT = typer.Option(
    False, "--user", help="A user unit (~/.config/systemd/user, systemctl --user) instead of a system one."
)
WATCHDOG = typer.Option(
    None,
    "--watchdog",
    min=1,
    max=3600,
    metavar="SECONDS",
    help="WatchdogSec=: p419 up pings every half of it.",
)
GRACE = typer.Option(10.0, min=0, max=600, help="p419 up --grace; TimeoutStopSec= is 10 s more.")
READY_TIMEOUT = typer.Option(30.0, min=1, max=600, help="p419 up --ready-timeout.")
REDIS_PASSWORD = typer.Option(
    True,
    "--redis-password/--no-redis-password",
    help="p419 up --redis-password: the Redis p419 starts gets a generated password (the service default).",
)
PYTHON = typer.Option(
    None,
    "--python",
    metavar="PATH",
    help="The project's interpreter (default: the one p419 up would use now).",
)
BROKER = typer.Option(None, help="p419 up --broker: auto, redis, embedded or a redis:// URL.")
RUN_AS = typer.Option(
    None,
    "--run-as",
    metavar="USER",
    help="User= of a system unit (default: the owner of the project's folder).",
)


def fail(message: str, code: int) -> SystemExit:
    from python419.cli_support import fail as cli_fail

    return cli_fail(message, code)


def default_name(cwd: Path) -> str:
    """p419-<the folder of the project's config>, else of this folder; also when the config is broken (for
    `service uninstall` of a project whose config no longer loads)."""
    from python419.production.systemd import unit_name
    from python419.project import ProjectError, find_config

    try:
        source = find_config(cwd)
    except ProjectError:
        source = None
    return unit_name(source.path.parent.name if source else cwd.name)


def _name(name: str | None) -> str:
    from python419.production.systemd import UnitError, check_name

    if name is None:
        return default_name(Path.cwd())
    try:
        return check_name(name)
    except UnitError as exc:
        raise fail(str(exc), 2) from None


def folder_owner(path: Path) -> str | None:
    """The owner of the project's folder, for User= (None on Windows, or when it is root)."""
    try:
        import pwd

        uid = path.stat().st_uid
        return None if uid == 0 else pwd.getpwuid(uid).pw_name
    except (ImportError, OSError, KeyError):
        return None


def project_interpreter(project: Project, python: str | None) -> str | None:
    """The interpreter `p419 up` would use now, absolute, for --python in the unit: under systemd there is no
    VIRTUAL_ENV and no shell. None: p419's own (the bundled app, or a project without an environment)."""
    import os

    from python419.interpreter import InterpreterError, choose_interpreter
    from python419.platforms import detect_platform

    try:
        found = choose_interpreter(
            platform=detect_platform(),
            environ=os.environ,
            root=project.root,
            app_dir=project.app_dir,
            flag=python,
            configured=project.python_config,
            config_file=project.config_path,
            bundled=project.bundled,
            cwd=Path.cwd(),
        )
    except InterpreterError as exc:
        raise fail(str(exc), 2) from None
    return None if found.own and python is None else os.path.abspath(found.path)


def build_unit(request: ServiceRequest) -> tuple[UnitOptions, str]:
    import sys

    from python419.cli_support import current
    from python419.production.systemd import UnitError, UnitOptions, p419_argv, render_unit
    from python419.project import Flags

    refused = request.refusal()
    if refused:
        raise fail(refused, 2)
    project, _ = current(Flags(python=request.python, broker=request.broker))
    options = UnitOptions(
        name=_name(request.name) if request.name else default_name(project.root),
        user_unit=request.user,
        grace=request.grace,
        ready_timeout=request.ready_timeout,
        watchdog=request.watchdog,
        redis_password=request.redis_password,
        python=project_interpreter(project, request.python),
        broker=request.broker,
        run_as=None if request.user else (request.run_as or folder_owner(project.root)),
    )
    try:
        text = render_unit(
            p419=p419_argv(sys.argv[0], sys.executable, lambda p: Path(p).is_file()),
            root=project.root,
            env_files=[p for p in project.env_files if p.is_file()],
            options=options,
            description=f"p419: FastAPI + Celery stack of {project.service_label}",
        )
    except UnitError as exc:
        raise fail(str(exc), 2) from None
    return options, text


@export_app.command("systemd")
def export_systemd(
    name: str | None = NAME,
    user: bool = USER_UNIT,
    watchdog: float | None = WATCHDOG,
    grace: float = GRACE,
    ready_timeout: float = READY_TIMEOUT,
    redis_password: bool = REDIS_PASSWORD,
    python: str | None = PYTHON,
    broker: str | None = BROKER,
    run_as: str | None = RUN_AS,
) -> None:
    """Print a systemd unit (Type=notify) that runs `p419 up` for the project in this folder (for a Linux
    host; on Windows: p419 service install)."""
    from python419.platforms import detect_platform
    from python419.production.systemd import export_blocker

    why = export_blocker(detect_platform())
    if why:
        raise fail(why, 2)
    request = ServiceRequest(
        name, user, watchdog, grace, ready_timeout, redis_password, python, broker, run_as
    )
    _, text = build_unit(request)
    typer.echo(text, nl=False)


@export_app.command("compose")
def export_compose(
    output: str = typer.Argument(
        "docker-compose.yml",
        help="The file to write (relative paths in it start at its folder); - prints it.",
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
) -> None:
    """Write a docker-compose.yml for the project: Redis, the API, one service per worker group, beat, flower
    (the inverse of p419 init)."""
    from python419.cli_support import current, err
    from python419.production.compose import ExportError, compose_document, render_yaml
    from python419.settings import read_env_files

    project, settings = current()
    to_stdout = output == "-"
    target = Path(output).resolve() if not to_stdout else None
    if target is not None and target.exists() and not force:
        raise fail(
            f"{target} exists (it may be the file p419 init read): --force replaces it, another path writes "
            "there, - prints it",
            2,
        )
    values = read_env_files(project.env_files)
    try:
        exported = compose_document(
            project,
            broker_url=settings.broker_redis_url,
            broker_mode=settings.broker_mode,
            env_file_values=values,
            out_dir=target.parent if target is not None else project.root,
            api_port=settings.api_port,
        )
    except ExportError as exc:
        raise fail(str(exc), 2) from None
    source = str(project.config_path) if project.config_path else str(project.root)
    text = render_yaml(exported.document, source)
    say = lambda line: err().print(line, soft_wrap=True, markup=False, highlight=False)  # noqa: E731
    if target is None:
        typer.echo(text, nl=False)
    else:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise fail(f"cannot write {target}: {exc.strerror or exc}", 1) from None
    for line in exported.left:
        say(f"left to you: {line}")
    if target is not None:
        say(f"wrote {target}; docker compose up runs it (p419 init reads it back)")


# --- p419 service ------------------------------------------------------------------------------------------


def _host(user: bool) -> Host:
    import os

    from python419.platforms import detect_platform
    from python419.production.service import find_host
    from python419.production.systemd import unit_dir

    return find_host(detect_platform(), unit_dir(user, os.environ, Path.home()), user)


def _blocked(user: bool, writes: bool) -> Host:
    """The host, or one line and exit 2 when `p419 service` cannot work here (before reading the project)."""
    from python419.production.service import blocker

    host = _host(user)
    why = blocker(host, writes=writes)
    if why:
        raise fail(why, 2)
    return host


@service_app.command("install")
def service_install(
    name: str | None = NAME,
    user: bool = USER_UNIT,
    force: bool = typer.Option(False, "--force", help="Replace an existing unit of that name."),
    watchdog: float | None = WATCHDOG,
    grace: float = GRACE,
    ready_timeout: float = READY_TIMEOUT,
    redis_password: bool = REDIS_PASSWORD,
    python: str | None = PYTHON,
    broker: str | None = BROKER,
    run_as: str | None = RUN_AS,
) -> None:
    """Linux: write the project's unit (as p419 export systemd prints it), systemctl daemon-reload, enable it.
    Windows: register the project's `p419 up` as a Windows service (starts at boot, restarted on failure)."""
    from python419.platforms import detect_platform
    from python419.production.service import ServiceError, install, run_command

    request = ServiceRequest(
        name, user, watchdog, grace, ready_timeout, redis_password, python, broker, run_as
    )
    if detect_platform() == "windows":
        from python419.production import windows_service

        windows_service.install_command(request, force=force)
        return
    host = _blocked(user, writes=True)
    options, text = build_unit(request)
    try:
        said = install(host, options.name, text, force=force, run=run_command)
    except ServiceError as exc:
        raise fail(str(exc), exc.code) from None
    for line in said:
        typer.echo(line)


@service_app.command("uninstall")
def service_uninstall(name: str | None = NAME, user: bool = USER_UNIT) -> None:
    """Stop and disable the project's unit (or Windows service) and remove it."""
    from python419.platforms import detect_platform
    from python419.production.service import ServiceError, run_command, uninstall

    if detect_platform() == "windows":
        from python419.production import windows_service

        windows_service.uninstall_command(name=name, user=user)
        return
    host = _blocked(user, writes=True)
    try:
        said = uninstall(host, _name(name), run=run_command)
    except ServiceError as exc:
        raise fail(str(exc), exc.code) from None
    for line in said:
        typer.echo(line)


def _control(verb: str, name: str | None, user: bool) -> None:
    from python419.platforms import detect_platform
    from python419.production.service import ServiceError, control, run_command

    if detect_platform() == "windows":
        from python419.production import windows_service

        windows_service.control_command(verb, name=name, user=user)  # raises typer.Exit
    host = _blocked(user, writes=False)
    try:
        code = control(host, verb, _name(name), run=run_command)
    except ServiceError as exc:
        raise fail(str(exc), exc.code) from None
    raise typer.Exit(code)


@service_app.command("start")
def service_start(name: str | None = NAME, user: bool = USER_UNIT) -> None:
    """systemctl start the project's unit (it is started once the stack is ready: Type=notify)."""
    _control("start", name, user)


@service_app.command("stop")
def service_stop(name: str | None = NAME, user: bool = USER_UNIT) -> None:
    """systemctl stop the project's unit: p419 up stops the stack in order (workers warmly)."""
    _control("stop", name, user)


@service_app.command("status")
def service_status(name: str | None = NAME, user: bool = USER_UNIT) -> None:
    """systemctl status of the project's unit (its STATUS= line says what runs); p419 status shows the children."""
    _control("status", name, user)
