"""systemd: the sd_notify listener (on a real socket bound here), the unit `p419 export systemd` writes (its keys
checked against systemd's documented ones), and `p419 service` decisions and install order with a fake
systemctl. Fast: no stack runs here (tests/supervisor/test_systemd.py runs one)."""

from __future__ import annotations

import gzip
import re
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from python419.production import service
from python419.production.service import Host, ServiceError
from python419.production.systemd import (
    UnitError,
    UnitOptions,
    check_name,
    exec_line,
    export_blocker,
    p419_argv,
    render_unit,
    unit_dir,
    unit_name,
)
from python419.supervisor import events as ev
from python419.supervisor.notify import (
    Notifier,
    NotifySettings,
    notify_settings,
    ready_summary,
    socket_address,
    systemd_notifier,
    watchdog_interval,
)

KINDS = {"redis": "redis", "api": "api", "worker1": "worker", "worker2": "worker", "beat": "beat"}


# --- the notification protocol ----------------------------------------------------------------------------


class Receiver:
    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(2)

    def take(self, count: int) -> list[str]:
        return [self.sock.recv(4096).decode() for _ in range(count)]

    def pending(self) -> list[str]:
        self.sock.setblocking(False)
        got = []
        try:
            while True:
                got.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass
        finally:
            self.sock.settimeout(2)
        return got


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    one = Receiver(str(tmp_path / "notify.sock"))
    yield one
    one.sock.close()


def test_notify_socket_addresses_and_watchdog_interval() -> None:
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@/org/freedesktop/systemd1/notify/42") == b"\0/org/freedesktop/systemd1/notify/42"
    assert socket_address("") is None and socket_address("@") is None
    assert socket_address("vsock:2:1234") is None and socket_address("relative.sock") is None
    assert watchdog_interval({"WATCHDOG_USEC": "400000"}, 7) == 0.2
    assert watchdog_interval({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "7"}, 7) == 0.2
    assert watchdog_interval({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "8"}, 7) is None  # another's
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, 7) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}, 7) is None
    assert watchdog_interval({}, 7) is None
    assert notify_settings({"WATCHDOG_USEC": "400000"}, 7) is None  # no socket, nothing to say
    assert notify_settings({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "30000000"}, 7) == NotifySettings(
        b"\0x", 15.0
    )


def test_ready_summary_names_what_runs() -> None:
    everyone = set(KINDS)
    assert ready_summary(KINDS, everyone, set()) == "ready: api, 2 workers, beat"
    assert (
        ready_summary(KINDS, everyone - {"worker2"}, {"worker2"})
        == "ready: api, 1 worker, beat; gave up: worker2"
    )
    workers_only = {"redis": "redis", "worker1": "worker"}
    assert ready_summary(workers_only, set(workers_only), set()) == "ready: 1 worker, no API (workers only)"
    assert ready_summary({**KINDS, "flower": "flower"}, everyone | {"flower"}, set()) == (
        "ready: api, 2 workers, beat, flower"
    )


def test_the_protocol_in_order_on_a_real_socket(receiver: Receiver, tmp_path: Path) -> None:
    notifier = Notifier(NotifySettings(str(tmp_path / "notify.sock"), None), KINDS)
    for pid, name in enumerate(KINDS, 100):
        notifier.handle(ev.Started(name, pid))
    for name in KINDS:
        notifier.handle(ev.Output(name, "a line"))  # nothing said for output
        notifier.handle(ev.ChildReady(name, 0.1))
    assert receiver.take(5)[-1] == "STATUS=starting: redis, api, worker1, worker2, beat"
    assert receiver.pending() == []  # ready children, but no READY=1 before the manager says the stack is
    notifier.handle(ev.StackReady(1.0, ("http://127.0.0.1:8000", "http://127.0.0.1:8000/docs")))
    assert receiver.take(1) == ["READY=1\nSTATUS=ready: api, 2 workers, beat"]
    notifier.handle(ev.Exited("worker2", 1, expected=False))
    notifier.handle(ev.Restarting("worker2", 0.5, 1))
    assert receiver.take(1) == ["STATUS=ready: api, 1 worker, beat; worker2 restarting in 0.5s"]
    notifier.handle(ev.Started("worker2", 200))
    notifier.handle(ev.ChildReady("worker2", 0.3))
    assert receiver.take(2) == [
        "STATUS=ready: api, 1 worker, beat; worker2 starting again",
        "STATUS=ready: api, 2 workers, beat",
    ]
    notifier.handle(ev.Stopping("received SIGTERM"))
    assert receiver.take(1) == ["STOPPING=1\nSTATUS=stopping: received SIGTERM"]
    notifier.handle(ev.Stopping("second interrupt: killing now", force=True))
    notifier.handle(ev.Stopped(1.25, ("worker1",)))
    assert receiver.take(2) == [
        "STATUS=stopping: second interrupt: killing now",
        "STATUS=stopped in 1.25s; killed: worker1",
    ]
    notifier.handle(ev.Note("after the end"))  # closed: nothing more, and no error
    assert receiver.pending() == []


def test_the_abstract_namespace(tmp_path: Path) -> None:
    name = f"p419-unit-{uuid.uuid4().hex}"
    abstract = Receiver(b"\0" + name.encode())
    try:
        settings = notify_settings({"NOTIFY_SOCKET": f"@{name}"}, 1)
        assert settings is not None
        notifier = Notifier(settings, {"worker1": "worker"})
        notifier.handle(ev.ChildReady("worker1", 0.2))
        notifier.handle(ev.StackReady(0.5, ()))
        assert abstract.take(1) == ["READY=1\nSTATUS=ready: 1 worker, no API (workers only)"]
    finally:
        abstract.sock.close()


def test_the_watchdog_pings_at_half_the_interval_and_stops_with_the_stack(
    receiver: Receiver, tmp_path: Path
) -> None:
    notifier = Notifier(NotifySettings(str(tmp_path / "notify.sock"), 0.05), KINDS)
    began = time.monotonic()
    pings = receiver.take(6)
    took = time.monotonic() - began
    assert pings == ["WATCHDOG=1"] * 6 and 0.25 <= took < 0.6, took
    thread = notifier._thread
    assert thread is not None and thread.daemon and thread.is_alive()
    notifier.handle(ev.Stopped(0.1))
    assert not thread.is_alive()
    receiver.pending()
    time.sleep(0.2)
    assert receiver.pending() == []


def test_a_send_that_fails_never_reaches_the_manager(tmp_path: Path) -> None:
    """Nobody listening (no such socket; a socket closed since): every event is taken, nothing raises."""
    for address in (str(tmp_path / "nobody.sock"), b"\0p419-nobody-" + uuid.uuid4().hex.encode()):
        notifier = Notifier(NotifySettings(address, 0.01), KINDS)
        for event in (ev.Started("api", 1), ev.StackReady(1.0, ()), ev.Stopping("x"), ev.Stopped(0.1)):
            notifier.handle(event)
    gone = Receiver(str(tmp_path / "gone.sock"))
    gone.sock.close()
    Notifier(NotifySettings(str(tmp_path / "gone.sock"), None), KINDS).handle(ev.StackReady(1.0, ()))


def test_systemd_notifier_takes_the_protocols_variables_from_the_childrens_environment() -> None:
    environ = {"NOTIFY_SOCKET": "@p419-x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "9", "PATH": "/bin"}
    notifier = systemd_notifier(KINDS, environ, 9)
    assert notifier is not None and notifier.settings == NotifySettings(b"\0p419-x", 0.5)
    assert environ == {"PATH": "/bin"}
    notifier.close()
    assert systemd_notifier(KINDS, {"PATH": "/bin"}, 9) is None


# --- the unit ---------------------------------------------------------------------------------------------

# The keys the unit may use, each where systemd documents it: systemd.unit(5) [Unit] and [Install],
# systemd.service(5), systemd.exec(5), systemd.kill(5). Cross-checked with systemd.directives(7) below when the
# manual is installed.
DOCUMENTED = {
    "Unit": {"Description", "Documentation", "Wants", "After", "Requires", "Before"},
    "Service": {
        # systemd.service(5)
        "Type",
        "NotifyAccess",
        "ExecStart",
        "Restart",
        "RestartSec",
        "RestartPreventExitStatus",
        "TimeoutStartSec",
        "TimeoutStopSec",
        "WatchdogSec",
        # systemd.exec(5)
        "User",
        "WorkingDirectory",
        "Environment",
        "SyslogIdentifier",
        # systemd.kill(5)
        "KillMode",
    },
    "Install": {"WantedBy"},
}
DIRECTIVES_MANUAL = Path("/usr/share/man/man7/systemd.directives.7.gz")


def sections(text: str) -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        header = re.fullmatch(r"\[(\w+)\]", line)
        if header:
            current = found.setdefault(header.group(1), [])
            continue
        assert current is not None, line
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z]+", key), line
        current.append((key, value))
    return found


def unit(tmp_path: Path, **options: object) -> str:
    env = tmp_path / ".env"
    env.write_text("A=1\n")
    return render_unit(
        p419=["/opt/p419/bin/p419"],
        root=tmp_path,
        env_files=[env],
        options=UnitOptions(name="p419-shop", **options),  # type: ignore[arg-type]
        description="p419: FastAPI + Celery stack of shop",
    )


def test_the_unit_runs_p419_up_as_a_notify_service(tmp_path: Path) -> None:
    text = unit(tmp_path, grace=12, watchdog=30, python="/srv/shop/.venv/bin/python", run_as="shop")
    service_keys = dict(sections(text)["Service"])
    assert service_keys["Type"] == "notify" and service_keys["NotifyAccess"] == "main"
    assert service_keys["ExecStart"] == (
        "/opt/p419/bin/p419 up --grace 12 --ready-timeout 30 --redis-password --python /srv/shop/.venv/bin/python"
    )
    assert service_keys["WorkingDirectory"] == str(tmp_path)
    assert "EnvironmentFile" not in service_keys, "p419 up reads its env files itself, under [env]"
    assert f"# p419 up reads its env files itself, at each start: {tmp_path / '.env'}" in text.splitlines()
    assert service_keys["KillMode"] == "mixed" and service_keys["TimeoutStopSec"] == "22"  # grace + 10
    assert service_keys["Restart"] == "on-failure" and service_keys["RestartPreventExitStatus"] == "2"
    assert service_keys["WatchdogSec"] == "30" and service_keys["User"] == "shop"
    assert dict(sections(text)["Install"]) == {"WantedBy": "multi-user.target"}
    plain = dict(sections(unit(tmp_path, redis_password=False))["Service"])
    assert "WatchdogSec" not in plain and "User" not in plain
    assert plain["ExecStart"].endswith("--no-redis-password")


def test_a_user_unit(tmp_path: Path) -> None:
    parsed = sections(unit(tmp_path, user_unit=True, run_as="ignored"))
    assert "User" not in dict(parsed["Service"])
    assert dict(parsed["Install"]) == {"WantedBy": "default.target"}
    assert "After" not in dict(parsed["Unit"])  # no network-online.target in a user manager
    assert unit_dir(True, {"XDG_CONFIG_HOME": "/x/conf"}, Path("/home/a")) == Path("/x/conf/systemd/user")
    assert unit_dir(True, {}, Path("/home/a")) == Path("/home/a/.config/systemd/user")
    assert unit_dir(False, {}, Path("/home/a")) == Path("/etc/systemd/system")


def test_every_key_of_the_unit_is_a_documented_systemd_key(tmp_path: Path) -> None:
    text = unit(tmp_path, watchdog=10, python="/p", broker="redis://127.0.0.1:6390/0", run_as="u")
    parsed = sections(text)
    assert set(parsed) == {"Unit", "Service", "Install"}
    for section, pairs in parsed.items():
        unknown = {key for key, _ in pairs} - DOCUMENTED[section]
        assert not unknown, (section, unknown)


@pytest.mark.skipif(
    not DIRECTIVES_MANUAL.is_file(), reason="systemd's manual (systemd.directives(7)) not installed"
)
def test_the_documented_keys_are_in_systemds_directive_index() -> None:
    manual = gzip.decompress(DIRECTIVES_MANUAL.read_bytes()).decode(errors="replace")
    listed = set(re.findall(r"^\\fI([A-Za-z]+)=\\fR", manual, re.M))
    assert len(listed) > 300, "the index was not parsed"
    for keys in DOCUMENTED.values():
        assert keys <= listed, keys - listed


def test_exec_start_words_are_escaped_as_systemd_reads_them() -> None:
    assert exec_line(["/a b/p419", "up", "--python", "/x/100%/py", "$HOME", 'say "hi"', ""]) == (
        '"/a b/p419" up --python /x/100%%/py $$HOME "say \\"hi\\"" ""'
    )
    assert exec_line([";"]) == '";"'
    with pytest.raises(UnitError, match="line break"):
        exec_line(["a\nb"])


def test_how_the_unit_calls_p419() -> None:
    files = {"/venv/bin/p419", "/usr/bin/python3", "/env/bin/p419"}
    exists = files.__contains__
    assert p419_argv("/venv/bin/p419", "/usr/bin/python3", exists) == ["/venv/bin/p419"]
    assert p419_argv("/src/python419/__main__.py", "/env/bin/python", exists) == ["/env/bin/p419"]
    assert p419_argv("-m", "/usr/bin/python3", exists) == ["/usr/bin/python3", "-m", "python419"]


def test_unit_names() -> None:
    assert unit_name("my shop!") == "p419-my-shop" and unit_name("...") == "p419-project"
    assert check_name("shop.service") == "shop"
    for bad in ("a b", "x@y", "", "-x"):
        with pytest.raises(UnitError):
            check_name(bad)


# --- p419 service -----------------------------------------------------------------------------------------


def host(tmp_path: Path, **changes: object) -> Host:
    values: dict[str, object] = {
        "platform": "linux",
        "systemctl": "/usr/bin/systemctl",
        "booted": True,
        "euid": 0,
        "unit_dir": tmp_path / "units",
        "user_unit": False,
    }
    values.update(changes)
    return Host(**values)  # type: ignore[arg-type]


class FakeSystemctl:
    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, argv: Sequence[str], capture: bool) -> tuple[int, str]:
        self.calls.append(list(argv[1:]))
        if self.fail and self.fail in argv:
            return 1, "Failed to enable unit: Access denied\n"
        return 0, ""


def test_where_p419_service_cannot_work(tmp_path: Path) -> None:
    assert "on Windows, p419 service install registers" in str(export_blocker("windows"))
    assert export_blocker("linux") is None and export_blocker("macos") is None
    assert "on Windows p419 service drives a Windows service" in str(
        service.blocker(host(tmp_path, platform="windows"), writes=False)
    )
    assert "needs systemd (Linux)" in str(service.blocker(host(tmp_path, platform="macos"), writes=False))
    assert "systemctl (systemd): not found" in str(
        service.blocker(host(tmp_path, systemctl=None), writes=False)
    )
    assert "not booted with it" in str(service.blocker(host(tmp_path, booted=False), writes=False))
    assert "needs root" in str(service.blocker(host(tmp_path, euid=1000), writes=True))
    assert service.blocker(host(tmp_path, euid=1000), writes=False) is None
    assert service.blocker(host(tmp_path, euid=1000, user_unit=True), writes=True) is None
    assert service.blocker(host(tmp_path), writes=True) is None


def test_install_writes_reloads_and_enables(tmp_path: Path) -> None:
    fake = FakeSystemctl()
    said = service.install(host(tmp_path), "p419-shop", "[Service]\n", force=False, run=fake)
    assert (tmp_path / "units" / "p419-shop.service").read_text() == "[Service]\n"
    assert fake.calls == [["daemon-reload"], ["enable", "p419-shop.service"]]
    assert "installed and enabled" in said[0]
    user = FakeSystemctl()
    service.install(host(tmp_path, user_unit=True), "p419-u", "x\n", force=False, run=user)
    assert user.calls == [["--user", "daemon-reload"], ["--user", "enable", "p419-u.service"]]


def test_an_existing_unit_is_refused_without_force(tmp_path: Path) -> None:
    path = tmp_path / "units" / "p419-shop.service"
    path.parent.mkdir()
    path.write_text("theirs\n")
    fake = FakeSystemctl()
    with pytest.raises(ServiceError, match="exists: p419 service install --force replaces it") as caught:
        service.install(host(tmp_path), "p419-shop", "ours\n", force=False, run=fake)
    assert caught.value.code == 2 and path.read_text() == "theirs\n" and fake.calls == []
    service.install(host(tmp_path), "p419-shop", "ours\n", force=True, run=fake)
    assert path.read_text() == "ours\n"


def test_nothing_is_half_installed(tmp_path: Path) -> None:
    path = tmp_path / "units" / "p419-shop.service"
    fake = FakeSystemctl(fail="enable")
    with pytest.raises(
        ServiceError, match="systemctl enable p419-shop.service failed .*Access denied"
    ) as caught:
        service.install(host(tmp_path), "p419-shop", "ours\n", force=False, run=fake)
    assert caught.value.code == 1 and not path.exists()
    assert fake.calls[-1] == ["daemon-reload"]  # systemd told the unit is gone
    path.write_text("before\n")  # --force over an existing unit: the old one is put back
    with pytest.raises(ServiceError):
        service.install(host(tmp_path), "p419-shop", "ours\n", force=True, run=FakeSystemctl(fail="enable"))
    assert path.read_text() == "before\n"
    assert [p.name for p in path.parent.iterdir()] == ["p419-shop.service"]  # no temporary file left
    with pytest.raises(ServiceError, match="needs root"):
        service.install(host(tmp_path, euid=1000), "p419-x", "ours\n", force=False, run=fake)
    assert not (path.parent / "p419-x.service").exists()


def test_uninstall_and_control(tmp_path: Path) -> None:
    fake = FakeSystemctl()
    with pytest.raises(ServiceError, match="no unit .* to uninstall"):
        service.uninstall(host(tmp_path), "p419-shop", run=fake)
    with pytest.raises(ServiceError, match="p419 service install first"):
        service.control(host(tmp_path), "start", "p419-shop", run=fake)
    service.install(host(tmp_path), "p419-shop", "x\n", force=False, run=fake)
    assert service.control(host(tmp_path), "status", "p419-shop", run=fake) == 0
    service.uninstall(host(tmp_path), "p419-shop", run=fake)
    assert not (tmp_path / "units" / "p419-shop.service").exists()
    assert fake.calls[-3:] == [
        ["status", "p419-shop.service"],
        ["disable", "--now", "p419-shop.service"],
        ["daemon-reload"],
    ]


def test_a_broker_url_with_a_password_is_refused_for_a_unit(tmp_path: Path) -> None:
    """A unit file is world-readable (0644): --broker redis://:PASSWORD@... would publish the password."""
    import subprocess
    import sys

    from tests.conftest import clean_environ

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "python419",
            "export",
            "systemd",
            "--broker",
            "redis://:hunter2@10.0.0.5:6379/0",
        ],
        env=clean_environ(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and not done.stdout, done.stdout
    assert "P419_BROKER" in done.stderr and "hunter2" not in done.stderr + done.stdout
    assert done.stderr.strip().count("\n") == 0  # one line
