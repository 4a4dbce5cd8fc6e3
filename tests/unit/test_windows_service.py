"""`p419 service` on Windows, the parts that need no Windows: what the service runs (its command line, its
Parameters in the registry, its failure actions), the decisions (names, accounts, the host's outcomes), the
install's order and roll-back against a fake service manager, and the host's run of p419 up with a real child
process (a stand-in that stops on the stop file, as p419 up does). tests/windows/e2e/test_service_under_wine.py
runs the real thing under Wine's service manager."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from python419.production import windows_service as ws
from python419.production import winsvc_host as host
from python419.production.systemd import UnitOptions, up_argv
from python419.production.windows_service import (
    HostConfig,
    ScmError,
    ServiceError,
    ServiceSpec,
    ServiceStatus,
)

PYTHON = r"C:\Program Files\Python312\python.exe"
SCRIPT = r"C:\Program Files\Python312\Lib\site-packages\python419\production\winsvc_host.py"


def spec_for(tmp_path: Path | None = None, **changes: Any) -> ServiceSpec:
    root = Path(r"C:\work\shop") if tmp_path is None else tmp_path
    up = up_argv([PYTHON, "-m", "python419"], UnitOptions(name="p419-shop", grace=15, broker="embedded"))
    values: dict[str, Any] = {
        "name": "p419-shop",
        "root": root,
        "data_dir": root / ".p419",
        "up": up,
        "grace": 15.0,
        "host_python": PYTHON,
        "host_script": SCRIPT,
        "site_dirs": (r"C:\Program Files\Python312\Lib\site-packages",),
        "env_files": [root / ".env"],
        "account": None,
        "version": "0.1.0",
        "what": "shop",
    }
    values.update(changes)
    return ws.build_spec(**values)


# --- what is registered ---------------------------------------------------------------------------------------


def test_the_service_runs_the_host_with_the_base_interpreter_isolated_and_quoted() -> None:
    spec = spec_for()
    assert spec.host_command == f'"{PYTHON}" -I "{SCRIPT}" p419-shop'
    # in a venv the launcher python.exe cannot be a service: its base interpreter hosts it
    venv = ws.host_interpreter(r"C:\shop\.venv\Scripts\python.exe", PYTHON, r"C:\shop\.venv", r"C:\Python312")
    assert venv == PYTHON
    plain = ws.host_interpreter(PYTHON, PYTHON, r"C:\Python312", r"C:\Python312")
    assert plain == PYTHON
    assert ws.host_interpreter(r"C:\a\python.exe", None, r"C:\v", r"C:\a") == r"C:\a\python.exe"


def test_the_host_path_has_the_package_and_in_a_venv_its_site_packages() -> None:
    site = [r"C:\shop\.venv", r"C:\shop\.venv\Lib\site-packages"]
    assert ws.host_site_dirs(r"C:\src", site, in_venv=True) == (r"C:\src", *site)
    assert ws.host_site_dirs(site[1], site, in_venv=True) == tuple(site[::-1])  # no duplicate
    assert ws.host_site_dirs(r"C:\Python312\Lib\site-packages", site, in_venv=False) == (
        r"C:\Python312\Lib\site-packages",
    )


def test_p419_up_gets_the_same_flags_as_the_systemd_unit_the_folder_and_the_data_dir() -> None:
    spec = spec_for()
    options = UnitOptions(name="p419-shop", grace=15, broker="embedded")
    assert list(spec.command) == up_argv([PYTHON, "-m", "python419"], options)
    assert spec.command[3:] == (
        "up",
        "--grace",
        "15",
        "--ready-timeout",
        "30",
        "--redis-password",
        "--broker",
        "embedded",
    )
    assert spec.working_dir == r"C:\work\shop"
    env = dict(spec.environment)
    assert env["P419_DATA_DIR"] == str(Path(r"C:\work\shop") / ".p419")
    assert env["PYTHONIOENCODING"] == "utf-8" and env["PYTHONUNBUFFERED"] == "1"
    assert spec.stop_timeout == 15 + ws.STOP_MARGIN
    assert spec.display_name == "p419 shop"
    assert "service.log" in spec.description


def test_registry_parameters_are_typed_and_read_back_by_the_host() -> None:
    spec = spec_for()
    values = ws.registry_values(spec)
    assert values["WorkingDirectory"] == (ws.REG_SZ, spec.working_dir)
    assert values["Command"] == (ws.REG_MULTI_SZ, list(spec.command))
    assert values["StopTimeout"] == (ws.REG_DWORD, 35)
    assert values[ws.MARKER] == (ws.REG_SZ, "0.1.0")
    assert values["Environment"][1][0].startswith("P419_DATA_DIR=")
    # what winreg hands back: the values without their types
    config = ws.host_config("p419-shop", {k: v for k, (_, v) in values.items()})
    assert config == HostConfig(
        name="p419-shop",
        working_dir=spec.working_dir,
        data_dir=spec.data_dir,
        command=spec.command,
        environment=dict(spec.environment),
        stop_timeout=35.0,
        version="0.1.0",
    )
    assert ws.registry_values(spec_for(grace=10.4))["StopTimeout"] == (ws.REG_DWORD, 31)  # rounded up


def test_parameters_missing_name_what_to_do() -> None:
    with pytest.raises(
        ValueError, match=r"no WorkingDirectory, Command .*reinstall it with p419 service install"
    ):
        ws.host_config("x", {"DataDir": "C:\\d"})
    config = ws.host_config(
        "x", {"WorkingDirectory": "w", "DataDir": "d", "Command": ["a"], "Environment": ["=x", "A=1=2"]}
    )
    assert config.environment == {"A": "1=2"} and config.stop_timeout == 30


def test_failure_actions_restart_with_growing_delays_and_reset_after_a_day() -> None:
    actions = ws.failure_actions(spec_for())
    assert actions["Actions"] == [(1, 5000), (1, 15000), (1, 60000)]  # SC_ACTION_RESTART
    assert actions["ResetPeriod"] == 86400


@pytest.mark.parametrize("name", ["p419-shop", "shop_2.prod", "A"])
def test_good_names(name: str) -> None:
    assert ws.check_service_name(name) == name


@pytest.mark.parametrize("name", ["", "a b", "a/b", "a\\b", "-x", ".x", "é", "x" * 81])
def test_bad_names_are_one_line_and_exit_2(name: str) -> None:
    with pytest.raises(ServiceError, match="--name") as caught:
        ws.check_service_name(name)
    assert caught.value.code == 2


def test_accounts() -> None:
    me = r"OFFICE\ana"
    assert ws.service_account(user=False, run_as=None, current=me) is None  # LocalSystem
    assert ws.service_account(user=True, run_as=None, current=me) == me
    assert ws.service_account(user=False, run_as="svc-shop", current=me) == r".\svc-shop"
    assert ws.service_account(user=False, run_as=r"OFFICE\svc", current=me) == r"OFFICE\svc"
    assert ws.service_account(user=False, run_as="svc@office.example", current=me) == "svc@office.example"
    assert ws.service_account(user=False, run_as="LocalService", current=me) == r"NT AUTHORITY\LocalService"
    assert ws.service_account(user=False, run_as=r"NT AUTHORITY\Network Service", current=me) == (
        r"NT AUTHORITY\NetworkService"
    )
    assert ws.service_account(user=False, run_as="LocalSystem", current=me) is None
    with pytest.raises(ServiceError, match="choose one"):
        ws.service_account(user=True, run_as="x", current=me)
    assert ws.needs_password(me) and ws.needs_password(r".\svc")
    assert not ws.needs_password(None)
    assert not ws.needs_password(r"NT AUTHORITY\LocalService")
    assert not ws.needs_password(r"NT SERVICE\p419-shop") and not ws.needs_password(r"OFFICE\gmsa$")


def test_a_password_comes_from_the_variable_or_a_terminal_never_from_nowhere(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert ws.ask_password(r".\svc", {ws.PASSWORD_VARIABLE: "s3cret"}) == "s3cret"
    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(ServiceError, match=ws.PASSWORD_VARIABLE):
        ws.ask_password(r".\svc", {})


def test_settings_set_only_in_this_terminal_are_named() -> None:
    names = ["P419_API_PORT", "REDIS_URL", "P419_DATA_DIR", "TELEGRAM_BOT_TOKEN"]
    environ = {"P419_API_PORT": "9000", "P419_DATA_DIR": "x", "TELEGRAM_BOT_TOKEN": "t", "PATH": "p"}
    said = ws.terminal_only(environ, names, {"TELEGRAM_BOT_TOKEN": "t"}, carried=["P419_DATA_DIR"])
    assert said == [
        "P419_API_PORT is set in this terminal only: the service does not see it; put it in the project's env "
        "file (.env) or its p419 config"
    ]
    assert ws.terminal_only({"PATH": "p"}, names, {}, ()) == []


def test_ready_timeout_is_read_from_the_command() -> None:
    assert ws.command_ready_timeout(spec_for().command) == 30
    assert ws.command_ready_timeout(["up", "--ready-timeout", "120"]) == 120
    assert ws.command_ready_timeout(["up"]) == 30


@pytest.mark.parametrize(
    ("winerror", "words", "code"),
    [
        (5, "needs an administrator: open the terminal with Run as administrator", 2),
        (1073, "already exists: p419 service uninstall --name p419-shop", 2),
        (1072, "is being deleted: close the Services console", 2),
        (1060, "no Windows service p419-shop: p419 service install first", 2),
        (1057, "no such account", 2),
        (1332, "no such account", 2),
        (1069, "could not log on", 1),
        (1058, "is disabled", 2),
        (1234, "CreateService failed: odd (1234)", 1),
    ],
)
def test_windows_errors_are_one_line_with_the_fix(winerror: int, words: str, code: int) -> None:
    error = ws.explain(ScmError(winerror, "CreateService", "odd"), "installing", "p419-shop")
    assert words in str(error) and error.code == code
    assert "\n" not in str(error)


# --- install, replace, uninstall against a fake service manager ----------------------------------------------------


class FakeScm:
    """The service manager, the registry and the event log's sources as dictionaries; `fail_at` makes one call
    raise, as Windows would."""

    def __init__(self, fail_at: str | None = None, winerror: int = 5) -> None:
        self.services: dict[str, dict[str, Any]] = {}
        self.parameters_of: dict[str, dict[str, Any]] = {}
        self.sources: set[str] = set()
        self.rights: list[str] = []
        self.calls: list[str] = []
        self.fail_at, self.winerror = fail_at, winerror
        self.status: dict[str, ServiceStatus] = {}
        self.alive: set[int] = set()
        self.stop_takes = 0  # queries until a stop is seen as done

    def _call(self, what: str) -> None:
        self.calls.append(what)
        if what == self.fail_at:
            raise ScmError(self.winerror, what, "refused")

    def check_can_create(self) -> None:
        self._call("check_can_create")

    def exists(self, name: str) -> bool:
        return name in self.services

    def parameters(self, name: str) -> dict[str, Any]:
        return dict(self.parameters_of.get(name, {}))

    def create(self, spec: ServiceSpec, password: str | None) -> None:
        self._call("create")
        self.services[spec.name] = {
            "command": spec.host_command,
            "account": spec.account,
            "password": password,
        }
        self.status[spec.name] = ServiceStatus(ws.STOPPED)

    def reconfigure(self, spec: ServiceSpec, password: str | None) -> Any:
        self._call("reconfigure")
        saved = (dict(self.services[spec.name]), self.parameters(spec.name))
        self.services[spec.name] = {
            "command": spec.host_command,
            "account": spec.account,
            "password": password,
        }
        return saved

    def restore(self, name: str, saved: Any) -> None:
        self.calls.append("restore")
        self.services[name], self.parameters_of[name] = saved

    def set_recovery(self, spec: ServiceSpec) -> list[str]:
        self._call("set_recovery")
        self.services[spec.name]["recovery"] = ws.failure_actions(spec)
        return []

    def write_parameters(self, name: str, values: Mapping[str, tuple[int, Any]]) -> None:
        self._call("write_parameters")
        self.parameters_of[name] = {k: v for k, (_, v) in values.items()}

    def add_event_source(self, name: str) -> None:
        self._call("add_event_source")
        self.sources.add(name)

    def remove_event_source(self, name: str) -> None:
        self.calls.append("remove_event_source")
        self.sources.discard(name)

    def grant_logon_right(self, account: str) -> None:
        self._call("grant_logon_right")
        self.rights.append(account)

    def delete(self, name: str) -> None:
        self.calls.append("delete")
        self.services.pop(name, None)
        self.parameters_of.pop(name, None)

    def start(self, name: str) -> None:
        self._call("start")
        self.status[name] = ServiceStatus(ws.RUNNING, pid=4242)
        self.alive.add(4242)

    def stop(self, name: str) -> None:
        self._call("stop")
        if self.status[name].state == ws.STOPPED:
            raise ScmError(ws.ERROR_SERVICE_NOT_ACTIVE, "ControlService")

    def query(self, name: str) -> ServiceStatus:
        if "stop" in self.calls and self.status[name].state != ws.STOPPED:
            if self.stop_takes <= 0:
                self.status[name] = ServiceStatus(ws.STOPPED)
            self.stop_takes -= 1
        return self.status[name]

    def process_alive(self, pid: int) -> bool:
        return pid in self.alive

    def left_behind(self) -> bool:
        return bool(self.services or self.parameters_of or self.sources)


def test_install_registers_the_service_its_recovery_its_parameters_and_its_event_source() -> None:
    scm = FakeScm()
    said = ws.install(scm, spec_for(), password=None, force=False)
    assert scm.calls == ["check_can_create", "create", "set_recovery", "write_parameters", "add_event_source"]
    assert scm.parameters_of["p419-shop"]["WorkingDirectory"] == r"C:\work\shop"
    assert scm.services["p419-shop"]["recovery"]["Actions"][0] == (1, 5000)
    assert "p419-shop" in scm.sources
    assert said[0].startswith("installed the Windows service p419-shop (starts at boot, as LocalSystem)")
    assert said[-1] == "start it now: p419 service start"  # the folder's default name: no --name needed


def test_no_rights_is_one_line_exit_2_and_nothing_is_written() -> None:
    scm = FakeScm(fail_at="check_can_create", winerror=5)
    with pytest.raises(ServiceError, match="needs an administrator") as caught:
        ws.install(scm, spec_for(), password=None, force=False)
    assert caught.value.code == 2 and scm.calls == ["check_can_create"] and not scm.left_behind()


def test_an_existing_service_is_one_line_exit_2_and_left_as_it_was() -> None:
    scm = FakeScm()
    scm.services["p419-shop"] = {"command": "theirs"}
    with pytest.raises(
        ServiceError, match="already exists: p419 service uninstall --name p419-shop"
    ) as caught:
        ws.install(scm, spec_for(), password=None, force=False)
    assert caught.value.code == 2 and scm.services == {"p419-shop": {"command": "theirs"}}
    with pytest.raises(ServiceError, match="is not p419's"):  # --force replaces only p419's own
        ws.install(scm, spec_for(), password=None, force=True)
    assert scm.services == {"p419-shop": {"command": "theirs"}}


@pytest.mark.parametrize(
    "step", ["set_recovery", "write_parameters", "add_event_source", "grant_logon_right"]
)
def test_a_step_that_fails_leaves_nothing_half_installed(step: str) -> None:
    scm = FakeScm(fail_at=step, winerror=1234)
    with pytest.raises(ServiceError) as caught:
        ws.install(scm, spec_for(account=r".\svc"), password="pw", force=False)
    assert caught.value.code == 1 and "(1234)" in str(caught.value)
    assert not scm.left_behind(), (scm.services, scm.parameters_of, scm.sources)
    assert "delete" in scm.calls


def test_an_account_with_a_password_gets_the_right_to_log_on_as_a_service() -> None:
    scm = FakeScm()
    said = ws.install(scm, spec_for(account=r".\svc"), password="pw", force=False)
    assert scm.rights == [r".\svc"] and scm.services["p419-shop"]["password"] == "pw"
    assert "as .\\svc" in said[0]
    ws.install(FakeScm(), spec_for(account=r"NT AUTHORITY\LocalService"), password=None, force=False)


def test_force_rewrites_p419s_own_service_and_puts_it_back_when_a_step_fails() -> None:
    scm = FakeScm()
    ws.install(scm, spec_for(), password=None, force=False)
    before = (dict(scm.services["p419-shop"]), scm.parameters("p419-shop"))
    said = ws.install(scm, spec_for(grace=60), password=None, force=True)
    assert scm.parameters("p419-shop")["StopTimeout"] == 80 and said[0].startswith("replaced")
    scm.fail_at = "write_parameters"
    with pytest.raises(ServiceError):
        ws.install(scm, spec_for(grace=99), password=None, force=True)
    assert scm.parameters("p419-shop")["StopTimeout"] == 80  # the previous ones, put back
    assert scm.calls[-1] == "restore"
    assert before[1]["StopTimeout"] == 35


def test_uninstall_stops_warmly_then_deletes_and_keeps_the_data_dir() -> None:
    scm = FakeScm()
    ws.install(scm, spec_for(), password=None, force=False)
    scm.start("p419-shop")
    scm.stop_takes = 3
    said = ws.uninstall(scm, "p419-shop", wait=lambda _: None)
    assert said[0].startswith("stopped p419-shop") and said[1].startswith(
        "removed the Windows service p419-shop"
    )
    assert "its data dir stays" in said[1]
    assert scm.calls.index("stop") < scm.calls.index("delete") and not scm.left_behind()


def test_uninstall_refuses_what_is_not_p419s_and_what_is_not_there() -> None:
    scm = FakeScm()
    with pytest.raises(ServiceError, match="no Windows service p419-shop") as caught:
        ws.uninstall(scm, "p419-shop")
    assert caught.value.code == 2
    scm.services["p419-shop"] = {}
    with pytest.raises(ServiceError, match="is not p419's: remove it with sc delete p419-shop"):
        ws.uninstall(scm, "p419-shop")
    assert scm.services


def test_uninstall_of_a_service_whose_process_is_gone_does_not_wait_for_it() -> None:
    scm = FakeScm()
    ws.install(scm, spec_for(), password=None, force=False)
    scm.status["p419-shop"] = ServiceStatus(ws.RUNNING, pid=999)  # Wine: it never noticed the crash
    ws.uninstall(scm, "p419-shop")
    assert "stop" not in scm.calls and not scm.left_behind()


def test_stop_of_a_stopped_service_says_so_and_a_stop_that_hangs_is_exit_1() -> None:
    scm = FakeScm()
    ws.install(scm, spec_for(), password=None, force=False)
    assert ws.stop_and_wait(scm, "p419-shop", None) == ["p419-shop is not running"]
    scm.start("p419-shop")
    scm.stop_takes = 10**9
    with pytest.raises(ServiceError, match="did not stop within 0.05s") as caught:
        ws.stop_and_wait(scm, "p419-shop", None, wait=lambda _: None, timeout=0.05)
    assert caught.value.code == 1


def test_a_stop_while_the_service_is_already_stopping_waits_for_it() -> None:
    """A second `p419 service stop` (the first one's Ctrl+C), or an uninstall during a warm stop: the service
    manager answers 1061 (it takes no control while stop-pending); that is waited for, not an error."""
    scm = FakeScm(fail_at="stop", winerror=ws.ERROR_SERVICE_CANNOT_ACCEPT_CTRL)
    ws.install(scm, spec_for(), password=None, force=False)
    scm.start("p419-shop")
    scm.stop_takes = 2
    said = ws.stop_and_wait(scm, "p419-shop", None, wait=lambda _: None)
    assert said[0].startswith("stopped p419-shop")


def test_a_start_while_the_service_is_stopping_says_so_with_exit_1() -> None:
    scm = FakeScm(fail_at="start", winerror=ws.ERROR_SERVICE_ALREADY_RUNNING)
    ws.install(scm, spec_for(), password=None, force=False)
    scm.status["p419-shop"] = ServiceStatus(ws.STOP_PENDING, pid=4242)
    lines, code = ws.start_and_wait(scm, "p419-shop", None, ready_timeout=5, wait=lambda _: None)
    assert (lines, code) == (["p419-shop is stopping: run p419 service start again once it has stopped"], 1)
    scm.status["p419-shop"] = ServiceStatus(ws.RUNNING, pid=4242)
    assert ws.start_and_wait(scm, "p419-shop", None, ready_timeout=5)[0] == [
        "p419-shop is already running (p419 service status)"
    ]


def test_the_service_log_and_messages_never_show_a_brokers_password() -> None:
    from python419.production.commands import ServiceRequest

    command = ["C:\\py\\python.exe", "-m", "python419", "up", "--broker", "redis://:hunter2@10.0.0.5:6379/0"]
    shown = ws.shown_command(command)
    assert "hunter2" not in shown and "redis://:**@10.0.0.5:6379/0" in shown and shown.startswith("C:\\py")
    # and install refuses to store one: the unit file, the registry entry and the log are readable by others
    refused = ServiceRequest(broker="redis://:hunter2@10.0.0.5:6379/0").refusal()
    assert refused is not None and "P419_BROKER" in refused and "hunter2" not in refused
    assert ServiceRequest(broker="redis://10.0.0.5:6379/0").refusal() is None
    assert ServiceRequest(broker="embedded").refusal() is None


def test_stop_of_a_service_whose_process_is_gone_does_not_ask_the_service_manager() -> None:
    scm = FakeScm()
    ws.install(scm, spec_for(), password=None, force=False)
    scm.status["p419-shop"] = ServiceStatus(ws.RUNNING, pid=999)  # dead: Wine never noticed
    said = ws.stop_and_wait(scm, "p419-shop", None)
    assert said == ["p419-shop is not running (its process 999 has ended; p419 service status says why)"]
    assert "stop" not in scm.calls


def test_a_password_prompt_needs_a_console() -> None:
    class Stream:
        def __init__(self, tty: bool) -> None:
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    assert not ws.interactive(None) and not ws.interactive(Stream(False))
    assert ws.interactive(Stream(True))  # POSIX: a tty is a terminal (Windows also asks the console)
    with pytest.raises(ServiceError, match="needs that account's password"):
        ws.ask_password(r".\svc", {}, stdin=Stream(False))


# --- start and status read the data dir ------------------------------------------------------------------------


def config_in(tmp_path: Path) -> HostConfig:
    values = {k: v for k, (_, v) in ws.registry_values(spec_for(tmp_path)).items()}
    return ws.host_config("p419-shop", values)


def test_start_waits_for_the_ready_stack(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    scm = FakeScm()
    ws.install(scm, spec_for(tmp_path), password=None, force=False)
    config = config_in(tmp_path)
    states = iter([None, {"ready": False}, {"ready": True, "api_url": "http://127.0.0.1:8000"}])
    monkeypatch.setattr(ws, "read_stack", lambda _: next(states))
    lines, code = ws.start_and_wait(scm, "p419-shop", config, ready_timeout=5, wait=lambda _: None)
    assert code == 0 and lines[0].startswith("started p419-shop: the stack is ready (http://127.0.0.1:8000)")
    scm.fail_at = "start"
    scm.winerror = ws.ERROR_SERVICE_ALREADY_RUNNING
    assert ws.start_and_wait(scm, "p419-shop", config, ready_timeout=5)[1] == 0


def test_a_start_that_fails_says_why_from_the_exit_the_host_recorded(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    scm = FakeScm()
    ws.install(scm, spec_for(tmp_path), password=None, force=False)
    config = config_in(tmp_path)
    config.logs_dir.mkdir(parents=True)
    (config.logs_dir / ws.LOG_NAME).write_text(
        "one\np419: api port 127.0.0.1:8000 is not free\n", encoding="utf-8"
    )
    monkeypatch.setattr(ws, "read_stack", lambda _: None)
    old = {"epoch": time.time() - 3600, "outcome": "failed", "code": 1, "reason": "old", "time": "then"}
    (config.logs_dir / ws.EXIT_RECORD).write_text(json.dumps(old), encoding="utf-8")
    waited: list[float] = []

    def wait(seconds: float) -> None:  # the host records the failure while start waits
        waited.append(seconds)
        new = {**old, "epoch": time.time(), "reason": "api port 127.0.0.1:8000 is not free", "time": "now"}
        (config.logs_dir / ws.EXIT_RECORD).write_text(json.dumps(new), encoding="utf-8")

    lines, code = ws.start_and_wait(scm, "p419-shop", config, ready_timeout=30, wait=wait)
    assert code == 1 and waited  # the old record was not taken for this start's
    assert lines[0] == (
        "p419-shop did not start: last exit (now): p419 up exit code 1, failed: api port 127.0.0.1:8000 is not free"
    )
    assert lines[-1] == "  p419: api port 127.0.0.1:8000 is not free"


def test_a_host_that_ends_before_p419_up_is_a_start_that_failed(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    class Failing(FakeScm):
        def start(self, name: str) -> None:
            self.calls.append("start")
            self.status[name] = ServiceStatus(
                ws.STOPPED, win32_exit=ws.ERROR_SERVICE_SPECIFIC_ERROR, service_exit=2
            )

    scm = Failing()
    ws.install(scm, spec_for(tmp_path), password=None, force=False)
    monkeypatch.setattr(ws, "read_stack", lambda _: None)
    lines, code = ws.start_and_wait(
        scm, "p419-shop", config_in(tmp_path), ready_timeout=30, wait=lambda _: None
    )
    assert code == 1
    assert lines == [
        "p419-shop stopped as it started (exit code 2): the Windows event log (Application, source p419-shop) "
        "says why"
    ]


def test_status_running_ready() -> None:
    config = ws.host_config("s", {"WorkingDirectory": "w", "DataDir": "d", "Command": ["x"]})
    stack = {"ready": True, "api_url": "http://127.0.0.1:8000", "children": {"api": {}, "worker1": {}}}
    lines, code = ws.status_lines("s", ServiceStatus(ws.RUNNING, pid=7), config, True, stack, None, ["x"])
    assert code == 0
    assert lines[0] == "s: running (host pid 7)"
    assert "  stack: ready, http://127.0.0.1:8000, 2 children (p419 status shows them)" in lines
    assert not any("last lines" in line for line in lines)


def test_status_of_a_service_that_could_not_start_says_why_and_shows_the_log() -> None:
    record = {"time": "t", "code": 2, "outcome": "config", "reason": "p419.toml: bogus: unknown key (line 2)"}
    status = ServiceStatus(ws.STOPPED, win32_exit=ws.ERROR_SERVICE_SPECIFIC_ERROR, service_exit=2)
    lines, code = ws.status_lines("s", status, None, True, None, record, ["a", "b"])
    assert code == 3
    assert lines == [
        "s: stopped",
        "  the service manager: stopped with service-specific exit code 2",
        "  last exit (t): p419 up exit code 2, could not start: a configuration error (not retried): "
        "p419.toml: bogus: unknown key (line 2)",
        "  last lines of the log:",
        "    a",
        "    b",
    ]


def test_status_sees_through_a_service_manager_that_missed_the_exit() -> None:
    record = {"time": "t", "code": 1, "outcome": "failed", "reason": "api port 127.0.0.1:8000 is not free"}
    lines, code = ws.status_lines("s", ServiceStatus(ws.RUNNING, pid=9), None, False, None, record, ["z"])
    assert code == 3
    assert lines[0].startswith("s: running for the service manager, but its process 9 is gone")
    assert "failed: api port 127.0.0.1:8000 is not free" in lines[1]


# --- the host ---------------------------------------------------------------------------------------------------


def test_outcomes() -> None:
    assert host.outcome(0, True, False) == "stopped"
    assert host.outcome(1, True, False) == "stopped"  # asked: whatever p419 up said on the way out
    assert host.outcome(None, True, True) == "killed"
    assert host.outcome(0, False, False) == "stopped"  # p419 down on its data dir
    assert host.outcome(2, False, False) == "config"
    assert host.outcome(1, False, False) == "failed"
    assert host.outcome(3221225477, False, False) == "failed"  # an access violation


def test_exit_reason_prefers_p419s_own_error() -> None:
    lines = [
        "p419    | started api",
        "p419: api port 127.0.0.1:8000 is not free: stop it",
        "Traceback? no",
        "",
    ]
    assert host.exit_reason(lines) == "api port 127.0.0.1:8000 is not free: stop it"
    assert host.exit_reason(["p419    | api could not start 5 times in a row", "  "]) == (
        "api could not start 5 times in a row"
    )
    assert host.exit_reason([]) == ""


# A stand-in for p419 up: prints, then stops on the stop file (as `p419 down` asks it) or exits as told.
FAKE_UP = r"""
import os, sys, time
run = os.path.join(os.environ["P419_DATA_DIR"], "run")
mode = sys.argv[1]
print("p419    | ready in 0.1s: API http://127.0.0.1:1", flush=True)
if mode.startswith("exit"):
    print("p419: api port 127.0.0.1:1 is not free", flush=True)
    sys.exit(int(mode[4:]))
os.makedirs(run, exist_ok=True)
while not os.path.exists(os.path.join(run, "stop-request")):
    time.sleep(0.05)
print("p419    | stopping: p419 down", flush=True)
if mode == "hang":
    time.sleep(60)
print("p419    | stopped in 0.1s \u2713", flush=True)
"""


class HostRun:
    def __init__(self, tmp_path: Path, mode: str, stop_timeout: float = 10) -> None:
        script = tmp_path / "fake_up.py"
        script.write_text(FAKE_UP, encoding="utf-8")
        self.config = HostConfig(
            name="p419-shop",
            working_dir=str(tmp_path),
            data_dir=str(tmp_path / "data"),
            command=(sys.executable, str(script), mode),
            environment={"P419_DATA_DIR": str(tmp_path / "data"), "PYTHONIOENCODING": "utf-8"},
            stop_timeout=stop_timeout,
        )
        self.reports: list[tuple[int, int]] = []
        self.events: list[tuple[str, str]] = []
        self.ended_tree = False
        self.host = host.Host(
            self.config,
            report=lambda state, wait_ms=0, **_: self.reports.append((state, wait_ms)),
            event=lambda level, text: self.events.append((level, text)),
            spawn=lambda argv, cwd, env: subprocess.Popen(
                argv, cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            ),
            contain=self.contain,
            poll_interval=0.05,
        )

    def contain(self, child: Any) -> Any:
        def end() -> None:
            self.ended_tree = True
            child.kill()

        return end

    def log(self) -> str:
        return (self.config.logs_dir / ws.LOG_NAME).read_text(encoding="utf-8")

    def record(self) -> dict[str, Any]:
        return dict(json.loads((self.config.logs_dir / ws.EXIT_RECORD).read_text(encoding="utf-8")))


def stop_when_started(run: HostRun, why: str = "the service manager's stop") -> None:
    import threading

    def later() -> None:
        deadline = time.monotonic() + 20
        while "ready in" not in "".join(run.host.tail) and time.monotonic() < deadline:
            time.sleep(0.02)
        run.host.request_stop(why)

    threading.Thread(target=later, daemon=True).start()


def test_the_service_managers_stop_is_p419_downs_warm_stop_and_the_host_waits_for_it(tmp_path: Path) -> None:
    run = HostRun(tmp_path, "stop")
    stop_when_started(run)
    ended = run.host.run()
    assert (ended.outcome, ended.code) == ("stopped", 0)
    log = run.log()
    assert "service: starting p419 up in" in log and "stopped in 0.1s ✓" in log  # UTF-8, whatever the console
    assert "service: stop: the service manager's stop; asking p419 up to stop (the stop file)" in log
    assert run.reports[0] == (host.SERVICE_STOP_PENDING, 15_000)  # at once, with the stop timeout as hint
    assert [level for level, _ in run.events] == ["info", "info"]  # one line at the start, one at the stop
    assert run.events[0][1].startswith("p419-shop: started p419 up (pid ")
    assert run.events[1][1].startswith(
        "p419-shop: stopped (the service manager's stop; p419 up exited 0 after "
    )
    assert run.record()["outcome"] == "stopped" and not run.ended_tree


def test_p419_up_failing_is_recorded_with_its_reason_for_a_restart(tmp_path: Path) -> None:
    run = HostRun(tmp_path, "exit1")
    ended = run.host.run()
    assert (ended.outcome, ended.code, ended.reason) == ("failed", 1, "api port 127.0.0.1:1 is not free")
    assert run.events[-1] == (
        "error",
        "p419-shop: p419 up exited with code 1: api port 127.0.0.1:1 is not free; the service manager "
        "restarts the service (its failure actions)",
    )
    record = run.record()
    assert record["code"] == 1 and record["outcome"] == "failed" and record["lines"][-1].startswith("p419:")


def test_a_configuration_error_is_not_retried(tmp_path: Path) -> None:
    run = HostRun(tmp_path, "exit2")
    ended = run.host.run()
    assert ended.outcome == "config"
    assert "cannot start (exit 2, not retried)" in run.events[-1][1]


def test_a_p419_up_that_does_not_stop_in_time_has_its_tree_ended(tmp_path: Path) -> None:
    run = HostRun(tmp_path, "hang", stop_timeout=1)
    stop_when_started(run)
    ended = run.host.run()
    assert ended.outcome == "killed" and run.ended_tree
    assert run.events[-1][0] == "warning" and "did not stop within 1s" in run.events[-1][1]


def test_a_project_folder_that_is_gone_is_a_configuration_error(tmp_path: Path) -> None:
    run = HostRun(tmp_path, "stop")
    gone = HostConfig(**{**run.config.__dict__, "working_dir": str(tmp_path / "gone")})
    run.host.config = gone
    ended = run.host.run()
    assert ended.outcome == "config" and "cannot start" in ended.reason


def test_the_log_moves_aside_past_its_size(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(host, "LOG_ROTATE_BYTES", 10)
    run = HostRun(tmp_path, "exit1")
    run.config.logs_dir.mkdir(parents=True)
    (run.config.logs_dir / ws.LOG_NAME).write_text("an older run, long enough\n", encoding="utf-8")
    run.host.run()
    assert (run.config.logs_dir / "service.log.1").read_text(encoding="utf-8").startswith("an older run")
    assert "an older run" not in run.log()
