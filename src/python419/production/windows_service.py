"""`p419 service install|uninstall|start|stop|status` on Windows: the project's `p419 up` as a Windows service.

The service manager starts a small host (`winsvc_host.py`, pywin32's service framework run by python.exe) at
boot, with no console and no logged-in user. The host runs the same `p419 up` as the terminal would: the
project's folder as working directory, its data dir, the same flags (`systemd.up_argv`: --grace,
--ready-timeout, --redis-password, --python, --broker); p419 up reads the project's config and env files there
itself. The service manager's stop becomes the warm stop of `p419 down` (the stop file; no console event), and
the host waits for it. Its output goes to `<data dir>/logs/service.log`; each start, stop and failure is one
line in the Windows event log (source: the service's name), and the last exit is kept in
`<data dir>/logs/service-exit.json` for `p419 service status`.

Failures: p419 up exiting on its own with a status other than 0 and 2 ends the host without reporting
"stopped" (a crash, to the service manager), so the service's failure actions restart it (after 5 s, 15 s,
then every 60 s; the count resets after a day). A configuration error (exit 2) is not retried, as
RestartPreventExitStatus=2 in the systemd unit: the service stops with service-specific exit code 2.

What is written is a pure function of explicit values (`ServiceSpec`, `registry_values`, `host_command_line`);
the service manager, the registry and the event log are reached through `Scm` (`PywinScm` on Windows; a fake in
tests/unit/test_windows_service.py), so the install's order and its roll-back are tested on Linux. An install
that fails part way leaves nothing: the service, its parameters and its event source are removed again.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from python419.production.commands import ServiceRequest

# --- names and fixed values -----------------------------------------------------------------------------

SERVICES_KEY = r"SYSTEM\CurrentControlSet\Services"
PARAMETERS = "Parameters"  # <service key>\Parameters: what the host reads at each start
MARKER = "P419Version"  # a service whose Parameters have it is p419's own
STOP_MARGIN = 20.0  # over --grace: p419 up's own stop (the broker last) and Windows' slower process exits
RESTART_DELAYS_MS = (5_000, 15_000, 60_000)  # failure actions: 1st, 2nd, then every later failure
RESET_PERIOD_S = 86_400  # the failure count goes back to 0 after a day without one
LOG_NAME = "service.log"
EXIT_RECORD = "service-exit.json"
LOG_ROTATE_BYTES = 10 * 1024 * 1024  # service.log moves to service.log.1 at a start past this size
CONFIG_ERROR = 2  # p419 up's exit status for a configuration the user must change: not retried
PASSWORD_VARIABLE = "P419_SERVICE_PASSWORD"
BUILTIN_ACCOUNTS = {
    "localsystem": None,  # None: LocalSystem, the service manager's default
    "localservice": r"NT AUTHORITY\LocalService",
    "networkservice": r"NT AUTHORITY\NetworkService",
}

# winreg's value types (spelled out: this module is imported on Linux, where winreg does not exist)
REG_SZ, REG_DWORD, REG_MULTI_SZ = 1, 4, 7

# Windows error codes the commands explain (winerror.h)
ERROR_ACCESS_DENIED = 5
ERROR_SERVICE_ALREADY_RUNNING = 1056
ERROR_SERVICE_CANNOT_ACCEPT_CTRL = 1061  # a start or a stop pending: it takes no other control now
ERROR_SERVICE_DISABLED = 1058
ERROR_INVALID_SERVICE_ACCOUNT = 1057
ERROR_SERVICE_DOES_NOT_EXIST = 1060
ERROR_SERVICE_NOT_ACTIVE = 1062
ERROR_SERVICE_SPECIFIC_ERROR = 1066
ERROR_SERVICE_LOGON_FAILED = 1069
ERROR_SERVICE_MARKED_FOR_DELETE = 1072
ERROR_SERVICE_EXISTS = 1073
ERROR_DUPLICATE_SERVICE_NAME = 1078
ERROR_NONE_MAPPED = 1332  # LookupAccountName: no such account

# SERVICE_STATUS.dwCurrentState
STATES = {
    1: "stopped",
    2: "starting",
    3: "stopping",
    4: "running",
    5: "continuing",
    6: "pausing",
    7: "paused",
}
STOPPED, STOP_PENDING, RUNNING = 1, 3, 4  # SERVICE_STATUS.dwCurrentState


class ServiceError(Exception):
    """One line for the user, and the exit status: 2 for what must change first, 1 for a failure of the
    service manager or of the service itself. (The same shape as production.service.ServiceError.)"""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class ScmError(Exception):
    """A failed call to the service manager, the registry or the LSA: its Windows error code."""

    def __init__(self, winerror: int, what: str, text: str = "") -> None:
        super().__init__(f"{what} failed: {text or 'Windows error'} ({winerror})")
        self.winerror, self.what, self.text = winerror, what, text


# --- the service, as values -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceSpec:
    """Everything `p419 service install` registers for one project."""

    name: str
    display_name: str
    description: str
    host_command: str  # the service's command line (binPath): python.exe -I winsvc_host.py NAME
    working_dir: str  # the project's folder (its config's): p419 up finds its config and env files here
    data_dir: str  # absolute; the child gets it as P419_DATA_DIR
    command: tuple[str, ...]  # p419 up, as argv
    environment: tuple[tuple[str, str], ...]  # added to the service's environment for p419 up
    stop_timeout: float  # seconds the host waits for p419 up's warm stop before ending its tree
    site_dirs: tuple[str, ...] = ()  # put on the host's sys.path (a venv's site-packages, an editable src)
    env_files: tuple[str, ...] = ()  # shown by status (p419 up reads them itself)
    account: str | None = None  # None: LocalSystem
    version: str = ""
    restart_delays_ms: tuple[int, ...] = RESTART_DELAYS_MS
    reset_period: int = RESET_PERIOD_S


@dataclass(frozen=True)
class HostConfig:
    """What the host reads from the service's Parameters key at each start."""

    name: str
    working_dir: str
    data_dir: str
    command: tuple[str, ...]
    environment: dict[str, str] = field(default_factory=dict)
    stop_timeout: float = 30.0
    version: str = ""

    @property
    def logs_dir(self) -> Path:
        return Path(self.data_dir) / "logs"

    @property
    def run_dir(self) -> Path:
        return Path(self.data_dir) / "run"


def check_service_name(name: str) -> str:
    """A service name given with --name: letters, digits and _ . - (the service manager allows more; these
    are safe as a registry key, an event source and a file name), at most 80 characters."""
    if (
        not name
        or len(name) > 80
        or name[0] in ".-"
        or any(not (c.isascii() and (c.isalnum() or c in "_.-")) for c in name)
    ):
        raise ServiceError(
            f"--name {name!r}: use up to 80 letters, digits and _ . - for a Windows service name"
        )
    return name


def service_account(*, user: bool, run_as: str | None, current: str) -> str | None:
    """The account the service logs on as (None: LocalSystem). `--user`: the one running this command
    (`current`, DOMAIN\\name); `--run-as ACCOUNT`: that one, a bare name meaning a local account (.\\name)."""
    if user and run_as:
        raise ServiceError("--user runs the service as you, --run-as as another account: choose one")
    if user:
        return current
    if not run_as:
        return None
    builtin = run_as.replace(" ", "").lower().removeprefix("ntauthority\\")
    if builtin in BUILTIN_ACCOUNTS:
        return BUILTIN_ACCOUNTS[builtin]
    if "\\" in run_as or "@" in run_as:
        return run_as
    return f".\\{run_as}"


def needs_password(account: str | None) -> bool:
    """LocalSystem, LocalService, NetworkService, virtual accounts (NT SERVICE\\x) and managed service
    accounts (name$) log on without one."""
    if account is None:
        return False
    upper = account.upper()
    return not (upper.startswith(("NT AUTHORITY\\", "NT SERVICE\\")) or account.endswith("$"))


def host_interpreter(executable: str, base_executable: str | None, prefix: str, base_prefix: str) -> str:
    """The python.exe the service manager starts. In a venv, `Scripts\\python.exe` is a launcher that runs the
    base interpreter as its child, and a child cannot talk to the service manager for the process it
    started: the base interpreter runs the host, with the venv's site-packages put on its path."""
    if prefix != base_prefix and base_executable:
        return base_executable
    return executable


def host_site_dirs(package_parent: str, site_packages: Sequence[str], in_venv: bool) -> tuple[str, ...]:
    """What the host adds to sys.path before importing python419 and pywin32: the folder python419 is in
    (site-packages, or src/ of an editable install) and, in a venv, the venv's site-packages (with their .pth
    files: pywin32's puts its DLLs on the path)."""
    dirs = [package_parent, *(site_packages if in_venv else ())]
    return tuple(dict.fromkeys(dirs))


def host_command_line(python: str, host_script: str, name: str) -> str:
    """The service's command line. -I: none of the machine's PYTHON* variables, no user site-packages, and the
    script's own folder (python419/production) not on sys.path."""
    return subprocess.list2cmdline([python, "-I", host_script, name])


def child_environment(spec_env: Mapping[str, str], service_env: Mapping[str, str]) -> dict[str, str]:
    """p419 up's environment: the service's, plus the spec's (the data dir, UTF-8 output, unbuffered)."""
    return {**service_env, **spec_env}


def stop_timeout(grace: float) -> float:
    return grace + STOP_MARGIN


def build_spec(
    *,
    name: str,
    root: Path,
    data_dir: Path,
    up: Sequence[str],
    grace: float,
    host_python: str,
    host_script: str,
    site_dirs: Sequence[str],
    env_files: Sequence[Path],
    account: str | None,
    version: str,
    what: str,
) -> ServiceSpec:
    """The service for a project. `up`: p419 up's argv (systemd.up_argv, the same flags as the unit)."""
    environment = (
        ("P419_DATA_DIR", str(data_dir)),
        ("PYTHONIOENCODING", "utf-8"),  # service.log is UTF-8, whatever the code page
        ("PYTHONUNBUFFERED", "1"),
    )
    return ServiceSpec(
        name=name,
        display_name=f"p419 {name.removeprefix('p419-')}",
        description=f"p419: FastAPI + Celery stack of {what} (p419 up; log: {data_dir / 'logs' / LOG_NAME})",
        host_command=host_command_line(host_python, host_script, name),
        working_dir=str(root),
        data_dir=str(data_dir),
        command=tuple(up),
        environment=environment,
        stop_timeout=stop_timeout(grace),
        site_dirs=tuple(site_dirs),
        env_files=tuple(str(p) for p in env_files),
        account=account,
        version=version,
    )


def registry_values(spec: ServiceSpec) -> dict[str, tuple[int, Any]]:
    """The values under the service's Parameters key: name -> (winreg type, value)."""
    return {
        "WorkingDirectory": (REG_SZ, spec.working_dir),
        "DataDir": (REG_SZ, spec.data_dir),
        "Command": (REG_MULTI_SZ, list(spec.command)),
        "Environment": (REG_MULTI_SZ, [f"{k}={v}" for k, v in spec.environment]),
        "StopTimeout": (REG_DWORD, math.ceil(spec.stop_timeout)),
        "SitePackages": (REG_MULTI_SZ, list(spec.site_dirs)),
        "EnvFiles": (REG_MULTI_SZ, list(spec.env_files)),
        MARKER: (REG_SZ, spec.version or "unknown"),
    }


def host_config(name: str, values: Mapping[str, Any]) -> HostConfig:
    """The Parameters as the host reads them (values as winreg returns them). Raises ValueError naming
    what is missing (a service installed by hand, or by another tool, under this name)."""
    missing = [key for key in ("WorkingDirectory", "DataDir", "Command") if not values.get(key)]
    if missing:
        raise ValueError(
            f"the service {name!r} has no {', '.join(missing)} under {SERVICES_KEY}\\{name}\\{PARAMETERS}: "
            "reinstall it with p419 service install"
        )
    environment = {}
    for item in values.get("Environment") or ():
        key, sep, value = str(item).partition("=")
        if sep and key:
            environment[key] = value
    return HostConfig(
        name=name,
        working_dir=str(values["WorkingDirectory"]),
        data_dir=str(values["DataDir"]),
        command=tuple(str(a) for a in values["Command"]),
        environment=environment,
        stop_timeout=float(values.get("StopTimeout") or 30),
        version=str(values.get(MARKER) or ""),
    )


def failure_actions(spec: ServiceSpec) -> dict[str, Any]:
    """SERVICE_FAILURE_ACTIONS as pywin32's ChangeServiceConfig2 takes it (SC_ACTION_RESTART = 1)."""
    return {
        "ResetPeriod": spec.reset_period,
        "RebootMsg": None,
        "Command": None,
        "Actions": [(1, delay) for delay in spec.restart_delays_ms],
    }


def terminal_only(
    environ: Mapping[str, str], names: Iterable[str], file_values: Mapping[str, str], carried: Iterable[str]
) -> list[str]:
    """Settings this terminal sets that the service will not see: it runs with the machine's environment, not
    this shell's. `names`: the variables the settings read; `file_values`: what the env files set."""
    carried = set(carried)
    found = sorted(
        {
            name
            for name in names
            if name in environ
            and name not in carried
            and name not in file_values
            and name.upper() not in file_values
        }
    )
    if not found:
        return []
    return [
        f"{', '.join(found)} {'is' if len(found) == 1 else 'are'} set in this terminal only: the service does not "
        "see it; put it in the project's env file (.env) or its p419 config"
    ]


# --- what the service manager says --------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceStatus:
    state: int  # SERVICE_STATUS.dwCurrentState
    pid: int = 0
    win32_exit: int = 0
    service_exit: int = 0

    @property
    def state_name(self) -> str:
        return STATES.get(self.state, f"state {self.state}")


def explain(error: ScmError, action: str, name: str) -> ServiceError:
    """A Windows error from the service manager as one line and the fix (exit 2), or as itself (exit 1)."""
    code = error.winerror
    if code == ERROR_ACCESS_DENIED:
        return ServiceError(
            f"{action} a Windows service needs an administrator: open the terminal with Run as administrator "
            "and run the command again"
        )
    if code == ERROR_SERVICE_EXISTS:
        return ServiceError(
            f"a Windows service named {name} already exists: p419 service uninstall --name {name} removes it "
            "(if it is p419's), or choose another --name"
        )
    if code == ERROR_DUPLICATE_SERVICE_NAME:
        return ServiceError(
            f"another Windows service already shows the name of {name}: choose another --name"
        )
    if code == ERROR_SERVICE_MARKED_FOR_DELETE:
        return ServiceError(
            f"the Windows service {name} is being deleted: close the Services console (services.msc) and any "
            "program that has it open, then run the command again"
        )
    if code == ERROR_SERVICE_DOES_NOT_EXIST:
        return ServiceError(
            f"no Windows service {name}: p419 service install first (or --name names another)"
        )
    if code in (ERROR_INVALID_SERVICE_ACCOUNT, ERROR_NONE_MAPPED):
        return ServiceError(f"{action} {name}: no such account for the service to run as (--run-as)")
    if code == ERROR_SERVICE_LOGON_FAILED:
        return ServiceError(
            f"{name} could not log on as its account: the password is wrong or has changed (reinstall it with "
            f"p419 service install --force and the right {PASSWORD_VARIABLE})",
            1,
        )
    if code == ERROR_SERVICE_DISABLED:
        return ServiceError(f"{name} is disabled: sc config {name} start= auto, then p419 service start")
    return ServiceError(f"{action} {name}: {error.what} failed: {error.text or 'Windows error'} ({code})", 1)


# --- the service manager, behind one small interface ------------------------------------------------------------


class Scm(Protocol):
    """The calls `install`/`uninstall`/`control` make; PywinScm on Windows, a fake in tests. Failures raise
    ScmError."""

    def check_can_create(self) -> None: ...
    def exists(self, name: str) -> bool: ...
    def parameters(self, name: str) -> dict[str, Any]: ...
    def create(self, spec: ServiceSpec, password: str | None) -> None: ...
    def reconfigure(self, spec: ServiceSpec, password: str | None) -> Any: ...  # returns what restore() takes
    def restore(self, name: str, saved: Any) -> None: ...
    def set_recovery(self, spec: ServiceSpec) -> list[str]: ...  # notes for optional settings not taken
    def write_parameters(self, name: str, values: Mapping[str, tuple[int, Any]]) -> None: ...
    def add_event_source(self, name: str) -> None: ...
    def remove_event_source(self, name: str) -> None: ...
    def grant_logon_right(self, account: str) -> None: ...
    def delete(self, name: str) -> None: ...
    def start(self, name: str) -> None: ...
    def stop(self, name: str) -> None: ...
    def query(self, name: str) -> ServiceStatus: ...
    def process_alive(self, pid: int) -> bool: ...


def install(scm: Scm, spec: ServiceSpec, *, password: str | None, force: bool) -> list[str]:
    """Register the service. Returns what to tell the user; raises ServiceError, with nothing left behind."""
    try:
        scm.check_can_create()
        exists = scm.exists(spec.name)
    except ScmError as exc:
        raise explain(exc, "installing", spec.name) from None
    if exists:
        if not force:
            raise explain(ScmError(ERROR_SERVICE_EXISTS, "CreateService"), "installing", spec.name)
        if not scm.parameters(spec.name).get(MARKER):
            raise ServiceError(
                f"a Windows service named {spec.name} exists and is not p419's: --force replaces only p419's "
                "own; choose another --name"
            )
        return _replace(scm, spec, password)
    done: list[str] = []
    try:
        scm.create(spec, password)
        done.append("created")
        notes = scm.set_recovery(spec)
        scm.write_parameters(spec.name, registry_values(spec))
        scm.add_event_source(spec.name)
        done.append("event source")
        if spec.account and needs_password(spec.account):
            scm.grant_logon_right(spec.account)
    except ScmError as exc:
        _roll_back(scm, spec.name, done)
        raise explain(exc, "installing", spec.name) from None
    except BaseException:
        _roll_back(scm, spec.name, done)
        raise
    who = spec.account or "LocalSystem"
    return [
        *notes,
        f"installed the Windows service {spec.name} (starts at boot, as {who}): p419 up in {spec.working_dir}",
        f"log: {Path(spec.data_dir) / 'logs' / LOG_NAME}; the service manager restarts it after a failure",
        "start it now: p419 service start"
        + ("" if spec.name == _default_hint(spec) else f" --name {spec.name}"),
    ]


def _default_hint(spec: ServiceSpec) -> str:
    from python419.production.systemd import unit_name

    return unit_name(PureWindowsPath(spec.working_dir).name)


def _replace(scm: Scm, spec: ServiceSpec, password: str | None) -> list[str]:
    """--force on p419's own service: its configuration and parameters rewritten in place (the previous ones put
    back when a step fails); a running service keeps running until its next start."""
    try:
        saved = scm.reconfigure(spec, password)
    except ScmError as exc:
        raise explain(exc, "replacing", spec.name) from None
    try:
        notes = scm.set_recovery(spec)
        scm.write_parameters(spec.name, registry_values(spec))
        if spec.account and needs_password(spec.account):
            scm.grant_logon_right(spec.account)
    except ScmError as exc:
        with contextlib.suppress(ScmError):  # best effort: the step's own error is the one to say
            scm.restore(spec.name, saved)
        raise explain(exc, "replacing", spec.name) from None
    running = scm.query(spec.name).state != STOPPED
    return [
        *notes,
        f"replaced the Windows service {spec.name}: p419 up in {spec.working_dir}",
        *(
            ["it is running the previous settings: p419 service stop, then p419 service start"]
            if running
            else []
        ),
    ]


def _roll_back(scm: Scm, name: str, done: Sequence[str]) -> None:
    """Undo a partial install (deleting the service deletes its Parameters key with it)."""
    if "event source" in done:
        with contextlib.suppress(ScmError):
            scm.remove_event_source(name)
    if "created" in done:
        with contextlib.suppress(ScmError):
            scm.delete(name)


def uninstall(
    scm: Scm, name: str, *, wait: Callable[[float], None] = time.sleep, timeout: float | None = None
) -> list[str]:
    """Stop the service warmly (waiting for it), delete it, remove its event source. The data dir stays."""
    try:
        params = scm.parameters(name) if scm.exists(name) else None
    except ScmError as exc:
        raise explain(exc, "uninstalling", name) from None
    if params is None:
        raise explain(ScmError(ERROR_SERVICE_DOES_NOT_EXIST, "OpenService"), "uninstalling", name)
    if not params.get(MARKER):
        raise ServiceError(f"the Windows service {name} is not p419's: remove it with sc delete {name}")
    lines: list[str] = []
    config = _config_or_none(name, params)
    status = scm.query(name)
    if status.state != STOPPED and (not status.pid or scm.process_alive(status.pid)):
        lines += stop_and_wait(scm, name, config, wait=wait, timeout=timeout)
    try:
        scm.delete(name)
    except ScmError as exc:
        raise explain(exc, "uninstalling", name) from None
    with contextlib.suppress(ScmError):
        scm.remove_event_source(name)
    kept = f"; its data dir stays: {config.data_dir}" if config else ""
    return [*lines, f"removed the Windows service {name}{kept}"]


def _config_or_none(name: str, params: Mapping[str, Any]) -> HostConfig | None:
    try:
        return host_config(name, params)
    except ValueError:
        return None


# --- start, stop, status ---------------------------------------------------------------------------------------


def read_exit(config: HostConfig) -> dict[str, Any] | None:
    try:
        data = json.loads((config.logs_dir / EXIT_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def log_tail(config: HostConfig, count: int = 8) -> list[str]:
    """The last lines of service.log (read from its end: it may be large)."""
    path = config.logs_dir / LOG_NAME
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 16_384))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-count:]


def read_stack(config: HostConfig) -> dict[str, Any] | None:
    """The running stack's state file (ready, api_url, children), if p419 up runs."""
    from python419.runfiles import read_state

    return read_state(config.run_dir)


def exit_line(record: Mapping[str, Any]) -> str:
    when = record.get("time", "?")
    code = record.get("code")
    reason = record.get("reason") or ""
    what = {
        "stopped": "stopped as asked",
        "killed": "stopped after its tree was ended (it did not stop within the stop timeout)",
        "config": "could not start: a configuration error (not retried)",
        "failed": "failed",
    }.get(str(record.get("outcome")), str(record.get("outcome")))
    return f"last exit ({when}): p419 up exit code {code}, {what}" + (f": {reason}" if reason else "")


def status_lines(
    name: str,
    status: ServiceStatus,
    config: HostConfig | None,
    alive: bool,
    stack: Mapping[str, Any] | None,
    record: Mapping[str, Any] | None,
    tail: Sequence[str],
) -> tuple[list[str], int]:
    """What `p419 service status` prints, and its exit status: 0 running, 3 not running (as systemctl)."""
    lines = []
    running = status.state not in (STOPPED,) and alive
    if status.state != STOPPED and not alive:
        lines.append(
            f"{name}: {status.state_name} for the service manager, but its process {status.pid} is gone "
            "(p419 up ended and the service manager has not noticed)"
        )
    else:
        pid = f" (host pid {status.pid})" if status.pid and status.state != STOPPED else ""
        lines.append(f"{name}: {status.state_name}{pid}")
    if status.state == STOPPED and status.win32_exit:
        detail = (
            f"service-specific exit code {status.service_exit}"
            if status.win32_exit == ERROR_SERVICE_SPECIFIC_ERROR
            else f"Windows error {status.win32_exit}"
        )
        lines.append(f"  the service manager: stopped with {detail}")
    if config is not None:
        lines.append(f"  project: {config.working_dir}")
        lines.append(f"  data dir: {config.data_dir}")
        lines.append(f"  log: {config.logs_dir / LOG_NAME}")
    if running and stack is not None:
        state = "ready" if stack.get("ready") else "starting"
        children = stack.get("children") or {}
        lines.append(
            f"  stack: {state}, {stack.get('api_url')}, {len(children)} children (p419 status shows them)"
        )
    elif running:
        lines.append("  stack: p419 up has not written its state yet (starting)")
    if record and (not running or record.get("outcome") in ("failed", "config", "killed")):
        lines.append("  " + exit_line(record))  # running: the failure the service manager restarted it after
    if tail and not running:
        lines.append("  last lines of the log:")
        lines += [f"    {line}" for line in tail]
    return lines, 0 if running else 3


def stop_and_wait(
    scm: Scm,
    name: str,
    config: HostConfig | None,
    *,
    wait: Callable[[float], None] = time.sleep,
    timeout: float | None = None,
) -> list[str]:
    """Ask the service manager to stop the service (the host turns it into p419 down's warm stop) and wait until
    it says stopped."""
    limit = timeout if timeout is not None else (config.stop_timeout if config else 30.0) + 15
    status = scm.query(name)
    if status.state == STOPPED:
        return [f"{name} is not running"]
    if status.pid and not scm.process_alive(status.pid):  # a service manager that missed the exit (Wine)
        return [f"{name} is not running (its process {status.pid} has ended; p419 service status says why)"]
    try:
        scm.stop(name)
    except ScmError as exc:
        if exc.winerror == ERROR_SERVICE_NOT_ACTIVE:
            return [f"{name} is not running"]
        if exc.winerror != ERROR_SERVICE_CANNOT_ACCEPT_CTRL:  # 1061: already stopping (a stop run twice)
            raise explain(exc, "stopping", name) from None
    began = time.monotonic()
    while time.monotonic() - began < limit:
        status = scm.query(name)
        if status.state == STOPPED:
            return [f"stopped {name} ({time.monotonic() - began:.1f}s)"]
        if status.pid and not scm.process_alive(status.pid):
            return [f"stopped {name} (its process has ended)"]
        wait(0.25)
    raise ServiceError(f"{name} did not stop within {limit:g}s: p419 service status says where it is", 1)


def start_and_wait(
    scm: Scm,
    name: str,
    config: HostConfig | None,
    *,
    ready_timeout: float,
    wait: Callable[[float], None] = time.sleep,
    now: Callable[[], float] = time.time,
) -> tuple[list[str], int]:
    """Start the service and wait until its stack is ready (p419 up's state file says so), or until the host
    recorded an exit that came after this start (its reason, and the last lines of the log)."""
    began = now()
    try:
        scm.start(name)
    except ScmError as exc:
        if exc.winerror == ERROR_SERVICE_ALREADY_RUNNING and scm.query(name).state == STOP_PENDING:
            return [f"{name} is stopping: run p419 service start again once it has stopped"], 1
        if exc.winerror == ERROR_SERVICE_ALREADY_RUNNING:
            return [f"{name} is already running (p419 service status)"], 0
        raise explain(exc, "starting", name) from None
    if config is None:
        return [f"started {name}"], 0
    deadline = time.monotonic() + ready_timeout

    def new_exit() -> dict[str, Any] | None:
        record = read_exit(config)
        return record if record and float(record.get("epoch") or 0) >= began - 1 else None

    def with_tail(first: str) -> list[str]:
        return [first, *[f"  {line}" for line in log_tail(config)]]

    while time.monotonic() < deadline:
        stack = read_stack(config)
        if stack is not None and stack.get("ready"):
            return [
                f"started {name}: the stack is ready ({stack.get('api_url')}); log: {config.logs_dir / LOG_NAME}"
            ], 0
        record = new_exit()
        if record is None and scm.query(name).state == STOPPED:
            record = new_exit()  # written just before the host said "stopped"
            if (
                record is None
            ):  # the host ended before p419 up did: it could not read its parameters, or start
                status = scm.query(name)
                code = (
                    status.service_exit
                    if status.win32_exit == ERROR_SERVICE_SPECIFIC_ERROR
                    else status.win32_exit
                )
                return with_tail(
                    f"{name} stopped as it started (exit code {code}): the Windows event log (Application, "
                    f"source {name}) says why"
                ), 1
        if record is not None:
            return with_tail(f"{name} did not start: " + exit_line(record)), 1
        wait(0.5)
    return [f"{name} started, but its stack is not ready after {ready_timeout:g}s: p419 service status"], 1


# --- the real service manager (pywin32) ----------------------------------------------------------------------


def _winreg() -> Any:
    """winreg, typed loosely: this module is type-checked on Linux, where winreg has no attributes."""
    import importlib

    return importlib.import_module("winreg")


class PywinScm:
    """Scm with pywin32: the service manager, the registry, the event log's sources, the LSA. Windows only."""

    def __init__(self) -> None:
        import win32service

        self._ws = win32service

    def _error(self, exc: Exception) -> ScmError:
        return ScmError(
            int(getattr(exc, "winerror", 0) or 0),
            str(getattr(exc, "funcname", "")),
            str(getattr(exc, "strerror", exc)),
        )

    def _manager(self, access: int) -> Any:
        try:
            return self._ws.OpenSCManager(None, None, access)
        except self._ws.error as exc:
            raise self._error(exc) from None

    def _open(self, name: str, access: int) -> Any:
        ws = self._ws
        manager = self._manager(ws.SC_MANAGER_CONNECT)
        try:
            return ws.OpenService(manager, name, access)
        except ws.error as exc:
            raise self._error(exc) from None
        finally:
            ws.CloseServiceHandle(manager)

    def check_can_create(self) -> None:
        self._ws.CloseServiceHandle(
            self._manager(self._ws.SC_MANAGER_CREATE_SERVICE | self._ws.SC_MANAGER_CONNECT)
        )

    def exists(self, name: str) -> bool:
        try:
            handle = self._open(name, self._ws.SERVICE_QUERY_STATUS)
        except ScmError as exc:
            if exc.winerror == ERROR_SERVICE_DOES_NOT_EXIST:
                return False
            raise
        self._ws.CloseServiceHandle(handle)
        return True

    def parameters(self, name: str) -> dict[str, Any]:
        winreg = _winreg()
        values: dict[str, Any] = {}
        try:
            key = winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, rf"{SERVICES_KEY}\{name}\{PARAMETERS}")
        except OSError:
            return values
        with key:
            index = 0
            while True:
                try:
                    value_name, value, _ = winreg.EnumValue(key, index)
                except OSError:
                    break
                values[value_name] = value
                index += 1
        return values

    def create(self, spec: ServiceSpec, password: str | None) -> None:
        ws = self._ws
        manager = self._manager(ws.SC_MANAGER_CREATE_SERVICE | ws.SC_MANAGER_CONNECT)
        try:
            handle = ws.CreateService(
                manager,
                spec.name,
                spec.display_name,
                ws.SERVICE_ALL_ACCESS,
                ws.SERVICE_WIN32_OWN_PROCESS,
                ws.SERVICE_AUTO_START,
                ws.SERVICE_ERROR_NORMAL,
                spec.host_command,
                None,
                0,
                None,
                spec.account,
                password,
            )
        except ws.error as exc:
            raise self._error(exc) from None
        finally:
            ws.CloseServiceHandle(manager)
        ws.CloseServiceHandle(handle)

    def reconfigure(self, spec: ServiceSpec, password: str | None) -> Any:
        ws = self._ws
        handle = self._open(spec.name, ws.SERVICE_QUERY_CONFIG | ws.SERVICE_CHANGE_CONFIG)
        try:
            previous = ws.QueryServiceConfig(handle)
            saved = (previous, self.parameters(spec.name))
            ws.ChangeServiceConfig(
                handle,
                ws.SERVICE_NO_CHANGE,
                ws.SERVICE_AUTO_START,
                ws.SERVICE_NO_CHANGE,
                spec.host_command,
                None,
                0,
                None,
                spec.account or "LocalSystem",
                password or "",
                spec.display_name,
            )
        except ws.error as exc:
            raise self._error(exc) from None
        finally:
            ws.CloseServiceHandle(handle)
        return saved

    def restore(self, name: str, saved: Any) -> None:
        ws = self._ws
        (_, start, _, binary, _, _, _, account, display), params = saved
        try:
            handle = self._open(name, ws.SERVICE_CHANGE_CONFIG)
            try:
                ws.ChangeServiceConfig(
                    handle,
                    ws.SERVICE_NO_CHANGE,
                    start,
                    ws.SERVICE_NO_CHANGE,
                    binary,
                    None,
                    0,
                    None,
                    account,
                    None,
                    display,
                )
            finally:
                ws.CloseServiceHandle(handle)
        except (ws.error, ScmError):
            pass
        kinds = {str: REG_SZ, int: REG_DWORD, list: REG_MULTI_SZ}
        self.write_parameters(name, {k: (kinds.get(type(v), REG_SZ), v) for k, v in params.items()})

    def set_recovery(self, spec: ServiceSpec) -> list[str]:
        """Failure actions (required); the pre-shutdown time (optional: a note when the system refuses it)."""
        ws = self._ws
        notes = []
        handle = self._open(spec.name, ws.SERVICE_CHANGE_CONFIG | ws.SERVICE_START)
        try:
            try:
                ws.ChangeServiceConfig2(handle, ws.SERVICE_CONFIG_DESCRIPTION, spec.description)
                ws.ChangeServiceConfig2(handle, ws.SERVICE_CONFIG_FAILURE_ACTIONS, failure_actions(spec))
            except ws.error as exc:
                raise self._error(exc) from None
            try:  # at shutdown, the warm stop gets the stop timeout (Windows' default is 20 s at most)
                ws.ChangeServiceConfig2(
                    handle, ws.SERVICE_CONFIG_PRESHUTDOWN_INFO, int(spec.stop_timeout * 1000)
                )
            except (ws.error, AttributeError) as exc:
                notes.append(
                    f"note: no pre-shutdown time ({getattr(exc, 'strerror', exc)}): at shutdown Windows gives the stop its default time"
                )
        finally:
            ws.CloseServiceHandle(handle)
        return notes

    def write_parameters(self, name: str, values: Mapping[str, tuple[int, Any]]) -> None:
        winreg = _winreg()
        try:
            with winreg.CreateKeyEx(
                winreg.HKEY_LOCAL_MACHINE, rf"{SERVICES_KEY}\{name}\{PARAMETERS}", 0, winreg.KEY_ALL_ACCESS
            ) as key:
                for value_name, (kind, value) in values.items():
                    winreg.SetValueEx(key, value_name, 0, kind, value)
        except OSError as exc:
            raise ScmError(
                getattr(exc, "winerror", 0) or 0, "writing the service's parameters", exc.strerror or str(exc)
            ) from None

    def add_event_source(self, name: str) -> None:
        import servicemanager
        import win32evtlogutil

        try:  # servicemanager's message table renders the host's LogInfoMsg/LogErrorMsg lines
            win32evtlogutil.AddSourceToRegistry(name, servicemanager.__file__, eventLogType="Application")
        except Exception as exc:  # pywintypes.error
            raise self._error(exc) from None

    def remove_event_source(self, name: str) -> None:
        import win32evtlogutil

        try:
            win32evtlogutil.RemoveSourceFromRegistry(name, "Application")
        except Exception as exc:
            raise self._error(exc) from None

    def grant_logon_right(self, account: str) -> None:
        import win32security

        try:
            policy = win32security.LsaOpenPolicy(None, win32security.POLICY_ALL_ACCESS)
            try:
                # `.\name` is how the service manager takes a local account; the account lookup does not
                # know `.`: the name alone is looked up on this machine first.
                local = account[2:] if account.startswith(".\\") else account
                sid = win32security.LookupAccountName(None, local)[0]
                win32security.LsaAddAccountRights(policy, sid, ["SeServiceLogonRight"])
            finally:
                win32security.LsaClose(policy)
        except Exception as exc:
            raise self._error(exc) from None

    def delete(self, name: str) -> None:
        ws = self._ws
        handle = self._open(name, ws.DELETE if hasattr(ws, "DELETE") else 0x10000)
        try:
            ws.DeleteService(handle)
        except ws.error as exc:
            raise self._error(exc) from None
        finally:
            ws.CloseServiceHandle(handle)

    def start(self, name: str) -> None:
        ws = self._ws
        handle = self._open(name, ws.SERVICE_START)
        try:
            ws.StartService(handle, None)
        except ws.error as exc:
            raise self._error(exc) from None
        finally:
            ws.CloseServiceHandle(handle)

    def stop(self, name: str) -> None:
        ws = self._ws
        handle = self._open(name, ws.SERVICE_STOP)
        try:
            ws.ControlService(handle, ws.SERVICE_CONTROL_STOP)
        except ws.error as exc:
            raise self._error(exc) from None
        finally:
            ws.CloseServiceHandle(handle)

    def query(self, name: str) -> ServiceStatus:
        ws = self._ws
        handle = self._open(name, ws.SERVICE_QUERY_STATUS)
        try:
            got = ws.QueryServiceStatusEx(handle)
        except ws.error as exc:
            raise self._error(exc) from None
        finally:
            ws.CloseServiceHandle(handle)
        return ServiceStatus(
            state=int(got["CurrentState"]),
            pid=int(got.get("ProcessId") or 0),
            win32_exit=int(got.get("Win32ExitCode") or 0),
            service_exit=int(got.get("ServiceSpecificExitCode") or 0),
        )

    def process_alive(self, pid: int) -> bool:
        import psutil

        try:
            return psutil.Process(pid).is_running()
        except psutil.Error:
            return False


# --- the commands (called by production.commands on Windows) -------------------------------------------------


def current_account() -> str:
    """DOMAIN\\name of the user running this command."""
    try:
        import win32api
        import win32con

        return str(win32api.GetUserNameEx(win32con.NameSamCompatible))
    except Exception:  # pywintypes.error, or no pywin32
        return f"{os.environ.get('USERDOMAIN', '.')}\\{os.environ.get('USERNAME', '')}"


def interactive(stream: Any) -> bool:
    """A console to ask in. On Windows isatty() is also true for NUL (`< nul`, a service, CI), where a prompt
    would wait forever: there only a handle the console accepts counts."""
    try:
        if stream is None or not stream.isatty():
            return False
        if os.name != "nt":
            return True
        import ctypes
        import msvcrt
        from ctypes import wintypes

        mode = wintypes.DWORD()
        handle = msvcrt.get_osfhandle(stream.fileno())  # type: ignore[attr-defined,unused-ignore]
        return bool(ctypes.windll.kernel32.GetConsoleMode(wintypes.HANDLE(handle), ctypes.byref(mode)))  # type: ignore[attr-defined,unused-ignore]
    except (OSError, ValueError, AttributeError):
        return False


def ask_password(account: str, environ: Mapping[str, str], stdin: Any = None) -> str:
    if environ.get(PASSWORD_VARIABLE):
        return environ[PASSWORD_VARIABLE]
    if not interactive(sys.stdin if stdin is None else stdin):
        raise ServiceError(
            f"a service that runs as {account} needs that account's password: set {PASSWORD_VARIABLE}, or run "
            "the command in a terminal to be asked for it"
        )
    import getpass

    return getpass.getpass(f"password of {account} (the service logs on with it): ")


def host_paths() -> tuple[str, str, tuple[str, ...]]:
    """This interpreter's answer to: which python.exe hosts the service, which script, which sys.path entries."""
    import site

    from python419.production import winsvc_host

    script = os.path.abspath(winsvc_host.__file__)
    package_parent = str(Path(script).parents[2])
    in_venv = sys.prefix != sys.base_prefix
    python = host_interpreter(
        sys.executable, getattr(sys, "_base_executable", None), sys.prefix, sys.base_prefix
    )
    return python, script, host_site_dirs(package_parent, site.getsitepackages(), in_venv)


def _name_for(name: str | None) -> str:
    from python419.production.commands import default_name

    return check_service_name(name) if name else default_name(Path.cwd())


def _fail(exc: ServiceError) -> Any:
    from python419.production.commands import fail

    return fail(str(exc), exc.code)


def _echo(lines: Iterable[str]) -> None:
    import typer

    for line in lines:
        typer.echo(line)


def install_command(request: ServiceRequest, *, force: bool) -> None:
    """`p419 service install` on Windows."""
    import python419
    from python419.cli_support import current
    from python419.production.commands import default_name, project_interpreter
    from python419.production.systemd import UnitOptions, up_argv
    from python419.project import Flags
    from python419.settings import env_names, read_env_files

    try:
        if request.watchdog:
            raise ServiceError(
                "--watchdog is systemd's (WatchdogSec=); a Windows service is restarted by its failure actions"
            )
        refused = request.refusal()
        if refused:
            raise ServiceError(refused)
        service_name = check_service_name(request.name) if request.name else None
        current_user = current_account() if request.user else ""
        account = service_account(user=request.user, run_as=request.run_as, current=current_user)
        scm = PywinScm()
        try:
            scm.check_can_create()  # before reading the project: no rights, one line
        except ScmError as exc:
            raise explain(exc, "installing", service_name or "the service") from None
        project, settings = current(Flags(python=request.python, broker=request.broker))
        service_name = service_name or default_name(project.root)
        options = UnitOptions(
            name=service_name,
            grace=request.grace,
            ready_timeout=request.ready_timeout,
            redis_password=request.redis_password,
            python=project_interpreter(project, request.python),
            broker=request.broker,
        )
        host_python, host_script, site_dirs = host_paths()
        env_files = [p for p in project.env_files if p.is_file()]
        spec = build_spec(
            name=service_name,
            root=project.root,
            data_dir=settings.data_dir,
            up=up_argv([sys.executable, "-m", "python419"], options),
            grace=request.grace,
            host_python=host_python,
            host_script=host_script,
            site_dirs=site_dirs,
            env_files=env_files,
            account=account,
            version=python419.__version__ if hasattr(python419, "__version__") else "",
            what=project.service_label,
        )
        password = ask_password(account, os.environ) if account and needs_password(account) else None
        try:
            (settings.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ServiceError(f"cannot make {settings.data_dir / 'logs'}: {exc.strerror or exc}") from None
        try:
            said = install(scm, spec, password=password, force=force)
        except ScmError as exc:  # beyond what install() explains itself (the service deleted meanwhile)
            raise explain(exc, "installing", service_name) from None
    except ServiceError as exc:
        raise _fail(exc) from None
    file_values = read_env_files(env_files)
    warnings = terminal_only(os.environ, env_names(type(settings)).values(), file_values, ("P419_DATA_DIR",))
    _echo([*said, *(f"warning: {w}" for w in warnings)])


def _installed(scm: Scm, name: str) -> HostConfig | None:
    try:
        if not scm.exists(name):
            raise explain(ScmError(ERROR_SERVICE_DOES_NOT_EXIST, "OpenService"), "", name)
        return _config_or_none(name, scm.parameters(name))
    except ScmError as exc:
        raise explain(exc, "reading", name) from None


def uninstall_command(*, name: str | None, user: bool) -> None:
    """`p419 service uninstall` on Windows (--user changes nothing here: a service has one name)."""
    service_name = "the service"
    try:
        service_name = _name_for(name)
        _echo(uninstall(PywinScm(), service_name))
    except ScmError as exc:
        raise _fail(explain(exc, "uninstalling", service_name)) from None
    except ServiceError as exc:
        raise _fail(exc) from None


def shown_command(command: Sequence[str]) -> str:
    """The service's command as its log and messages show it: a URL's password masked."""
    from python419.addresses import safe_url

    return subprocess.list2cmdline([safe_url(word) if "://" in word else word for word in command])


def command_ready_timeout(command: Sequence[str], default: float = 30.0) -> float:
    """p419 up's --ready-timeout in the service's command (how long `p419 service start` should wait)."""
    for flag, value in zip(command, command[1:], strict=False):
        if flag == "--ready-timeout":
            try:
                return float(value)
            except ValueError:
                break
    return default


START_MARGIN = 90.0  # over --ready-timeout: the interpreter's search, the broker, a slow first start


def control_command(verb: str, *, name: str | None, user: bool) -> None:
    """`p419 service start|stop|status` on Windows; exits with the command's status."""
    import typer

    try:
        scm = PywinScm()
        service_name = _name_for(name)
        config = _installed(scm, service_name)
        if verb == "start":
            limit = command_ready_timeout(config.command if config else ()) + START_MARGIN
            lines, code = start_and_wait(scm, service_name, config, ready_timeout=limit)
        elif verb == "stop":
            lines, code = stop_and_wait(scm, service_name, config), 0
        else:
            status = scm.query(service_name)
            alive = status.state == STOPPED or not status.pid or scm.process_alive(status.pid)
            stack = read_stack(config) if config else None
            record = read_exit(config) if config else None
            tail = log_tail(config) if config else []
            lines, code = status_lines(service_name, status, config, alive, stack, record, tail)
    except ScmError as exc:  # the service deleted meanwhile, an ACL that refuses a query
        raise _fail(explain(exc, verb, name or "the service")) from None
    except ServiceError as exc:
        raise _fail(exc) from None
    _echo(lines)
    raise typer.Exit(code)
