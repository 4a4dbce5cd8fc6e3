"""`p419 service` on Windows, under Wine's service manager (services.exe): a project's `p419 up` as a Windows service.

Run by scripts/test-windows. The module starts the prefix's wineserver persistent and boots it once, so
services.exe outlives each command, with its stderr in a file: Wine's ReportEventW writes each event-log string
to its `eventlog` debug channel (Wine keeps no event log to read back), so that file is where the service's
event-log lines are seen. The services run with that boot's environment (none of our settings: the project's
.env has them) and a tag, P419_WINE_RUN, by which /proc shows every process of theirs.

What Wine's service manager does not do, and these tests therefore do not ask of it:
it never notices that a service's process ended without reporting "stopped" (the state stays "running" with a
dead pid), so it runs no failure actions (no restart), and it refuses the SERVICE_CONFIG_FAILURE_ACTIONS_FLAG level
(error 124). `p419 service status` reads the exit the host recorded instead.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from tests.fake_telegram import FakeTelegram
from tests.procs import free_port, wait_until
from tests.windows.e2e.wine import WINE, WINE_PYTHON, alive, decode, require_wine, run_windows, windows_env

WINESERVER = os.environ.get("P419_WINESERVER", "wineserver")
GRACE = 30.0
TASK_SECONDS = 8  # longer than Wine takes to start `p419 service stop` (3-4 s): the stop lands mid-task
# A whole service's life in one test: about 40 s each under Wine here (a stack is ready in 10-30 s).
pytestmark = pytest.mark.timeout(360)
EVENT = re.compile(r':eventlog:ReportEventW L"(.*)"$')


@dataclass
class Machine:
    """The prefix booted as a machine: a persistent wineserver, services.exe, the event log's lines."""

    root: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex)
    events_file: Path = field(init=False)
    names: list[str] = field(default_factory=list)  # services the tests may have installed

    def __post_init__(self) -> None:
        self.events_file = self.root / "services-stderr.log"

    def boot(self) -> None:
        """What a power-on is to the service manager: services.exe starts, and with it the auto-start services."""
        env = windows_env(P419_WINE_RUN=self.tag, WINEDEBUG="-all,+eventlog")
        subprocess.run(
            [WINESERVER, "-p"], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=False
        )
        with self.events_file.open("ab") as events:
            subprocess.run(
                [WINE, "wineboot"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=events,
                timeout=120,
                check=True,
            )

    def power_off(self) -> None:
        """Everything of the prefix ends at once (no orderly shutdown: Wine sends services none)."""
        subprocess.run([WINESERVER, "-k"], stdin=subprocess.DEVNULL, check=False)
        wait_until(lambda: not self.processes(".exe"), 30)

    def events(self) -> list[str]:
        text = decode(self.events_file.read_bytes()) if self.events_file.exists() else ""
        return [m.group(1).replace("\\\\", "\\") for m in map(EVENT.search, text.splitlines()) if m]

    def processes(self, what: str = "python.exe") -> list[psutil.Process]:
        """The Windows processes of this boot (they carry its tag): the services' Python ones by default."""
        found = []
        for proc in psutil.process_iter():
            try:
                if proc.environ().get("P419_WINE_RUN") == self.tag and what in " ".join(proc.cmdline()):
                    found.append(proc)
            except psutil.Error:
                pass
        return found

    def sc_query(self, name: str) -> str:
        done = subprocess.run(
            [WINE, "sc", "query", name],
            env=windows_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
        )
        return decode(done.stdout + done.stderr)


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    require_wine(WINE_PYTHON)
    booted = Machine(tmp_path_factory.mktemp("machine"))
    booted.power_off()  # whatever earlier tests left; this module's services.exe must carry the tag
    booted.boot()
    yield booted
    # The prefix is cached across runs: a service a failed test left behind would start at every later boot.
    for name in booted.names:
        if "SERVICE_NAME" in booted.sc_query(name):
            run_windows(
                WINE_PYTHON,
                ["-m", "python419", "service", "uninstall", "--name", name],
                booted.root,
                windows_env(),
            )
            subprocess.run(
                [WINE, "sc", "delete", name],
                env=windows_env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=60,
            )
    booted.power_off()  # back to a wineserver that goes away with its last process, as the other tests expect


def state(sc_output: str) -> str:
    found = re.search(r"STATE\s+:\s+\d+\s+(\w+)", sc_output)
    return found.group(1) if found else sc_output.strip()


class Project:
    """A folder with the bundled app's settings in its .env, and `p419` run there as a Windows user would."""

    def __init__(self, machine: Machine, root: Path, telegram: FakeTelegram, port: int | None = None) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.name = f"p419-wine-{uuid.uuid4().hex[:6]}"
        machine.names.append(self.name)
        (root / ".env").write_text(
            "\n".join(
                [
                    f"P419_API_PORT={self.port}",
                    f"TELEGRAM_BOT_TOKEN={telegram.token}",
                    f"TELEGRAM_CHAT_ID={telegram.chat_id}",
                    f"TELEGRAM_API_URL={telegram.url}",
                    "TELEGRAM_TIMEOUT=20",
                    "P419_SWEEP_INTERVAL=1",
                    "P419_LEASE_SECONDS=90",
                ]
            )
            + "\n",
            encoding="utf-8",
        )
        self.data = root / ".p419"

    def p419(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        done = run_windows(WINE_PYTHON, ["-m", "python419", *args], self.root, windows_env(), timeout)
        print(f"$ p419 {' '.join(args)}  -> {done.returncode}\n{done.stdout}{done.stderr}")
        return done

    def service(self, verb: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        done = self.p419("service", verb, "--name", self.name, *args, timeout=timeout)
        if "coming" in done.stdout + done.stderr:
            pytest.fail(
                "p419 service on Windows still answers 'coming': production/commands.py does not call "
                "production.windows_service yet (see windows_service.install_command)"
            )
        return done

    def log(self) -> str:
        path = self.data / "logs" / "service.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def exit_record(self) -> dict:
        return json.loads((self.data / "logs" / "service-exit.json").read_text(encoding="utf-8"))

    def post_product(self, name: str) -> None:
        response = httpx.post(
            f"http://127.0.0.1:{self.port}/products", json={"name": name, "price": 1}, timeout=30
        )
        assert response.status_code == 201, response.text


def test_install_start_deliver_survive_a_crash_stop_warmly_uninstall(
    machine: Machine, telegram: FakeTelegram, tmp_path: Path
) -> None:
    shop = Project(machine, tmp_path / "shop", telegram)
    name = shop.name

    installed = shop.service(
        "install", "--broker", "embedded", "--grace", f"{GRACE:g}", "--no-redis-password"
    )
    assert installed.returncode == 0, installed.stderr
    assert f"installed the Windows service {name} (starts at boot, as LocalSystem)" in installed.stdout
    assert state(machine.sc_query(name)) == "STOPPED"
    again = shop.service("install", "--broker", "embedded")
    assert again.returncode == 2, again.stdout
    assert (
        f"a Windows service named {name} already exists: p419 service uninstall --name {name}" in again.stderr
    )
    assert len(again.stderr.strip().splitlines()) == 1

    earlier = {p.pid for p in machine.processes()}  # other services of the prefix, if any
    started = shop.service("start")
    assert started.returncode == 0, started.stdout + started.stderr + shop.log()[-3000:]
    assert f"started {name}: the stack is ready (http://127.0.0.1:{shop.port})" in started.stdout
    running_sc = machine.sc_query(name)
    print(running_sc)
    assert state(running_sc) == "RUNNING"
    assert any(e.startswith(f"{name}: started p419 up (pid ") for e in machine.events()), machine.events()
    ours = [p for p in machine.processes() if p.pid not in earlier]
    assert any("winsvc_host.py" in " ".join(p.cmdline()) for p in ours), [p.cmdline() for p in ours]
    # the same p419 up as in a terminal: the project's folder, its data dir, the flags given at install
    assert f"--grace {GRACE:g} --ready-timeout 30 --no-redis-password --broker embedded" in shop.log()

    marker = f"svc-{uuid.uuid4().hex[:8]}"
    shop.post_product(marker)
    assert telegram.wait_for(lambda: telegram.delivered(marker), 90), shop.log()[-4000:]

    # a crash of one child: p419 up restarts it; the service does not notice
    status = shop.p419("status", "--json")
    assert status.returncode == 0, status.stderr
    before = {c["name"]: c["pid"] for c in json.loads(status.stdout)["children"]}
    killed = run_windows(
        WINE_PYTHON, ["-c", f"import os; os.kill({before['worker1']}, 9)"], shop.root, windows_env()
    )
    assert killed.returncode == 0, killed.stderr
    assert wait_until(lambda: shop.log().count("worker1 ready in") >= 2, 90), shop.log()[-3000:]
    assert re.search(r"worker1 exited unexpectedly with code 9", shop.log()), shop.log()[-3000:]
    after = {c["name"]: c["pid"] for c in json.loads(shop.p419("status", "--json").stdout)["children"]}
    assert after["worker1"] != before["worker1"] and after["api"] == before["api"]
    assert state(machine.sc_query(name)) == "RUNNING"
    again_marker = f"svc-{uuid.uuid4().hex[:8]}"
    shop.post_product(again_marker)
    assert telegram.wait_for(lambda: telegram.delivered(again_marker), 90), shop.log()[-4000:]

    # the service manager's stop is p419 down's warm stop: the task in hand finishes
    warm = f"warm-{uuid.uuid4().hex[:8]}"
    telegram.script(warm, [f"delay:{TASK_SECONDS}"])
    shop.post_product(warm)
    assert wait_until(lambda: _received_after(shop.log(), again_marker), 60), shop.log()[-3000:]
    services_pids = [p for p in machine.processes() if p.pid not in earlier]
    began = time.monotonic()
    stopped = shop.service("stop")
    took = time.monotonic() - began
    print(
        f"p419 service stop with a task in flight took {took:.1f}s (grace {GRACE:g}s, task {TASK_SECONDS}s)"
    )
    log = shop.log()
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr + log[-3000:]
    assert f"stopped {name}" in stopped.stdout
    stopping = log.find("stopping: p419 down", log.find("service: stop: the service manager's stop"))
    finished = log.find("succeeded in", stopping)
    assert -1 < stopping < finished, f"the stop did not land while the task was in flight:\n{log[-4000:]}"
    assert telegram.delivered(warm), f"the task in flight was lost:\n{log[-4000:]}"
    tail = log[stopping:]
    assert re.search(r"p419\s+\| worker1 stopped\n", tail) and "worker1 killed" not in tail, tail
    assert f"service: {name}: stopped (the service manager's stop; p419 up exited 0 after" in tail
    sc = machine.sc_query(name)
    assert state(sc) == "STOPPED" and re.search(r"WIN32_EXIT_CODE\s+:\s+0", sc), sc
    record = shop.exit_record()
    assert (record["outcome"], record["code"]) == ("stopped", 0)
    assert any(e.startswith(f"{name}: stopped (the service manager's stop;") for e in machine.events())
    assert wait_until(lambda: not alive(services_pids), 30), alive(services_pids)

    status_after = shop.service("status")
    assert status_after.returncode == 3, status_after.stdout
    assert f"{name}: stopped" in status_after.stdout and "stopped as asked" in status_after.stdout

    removed = shop.service("uninstall")
    assert removed.returncode == 0 and f"removed the Windows service {name}" in removed.stdout, removed.stderr
    gone = shop.service("status")
    assert gone.returncode == 2 and f"no Windows service {name}" in gone.stderr, gone.stdout + gone.stderr
    assert "Traceback" not in log, log[-4000:]
    print("the event log, as Wine's ReportEventW traced it:", *machine.events(), sep="\n  ")


def _received_after(log: str, marker: str) -> bool:
    """The worker logged a `received` for a task after the last product was delivered (the one in flight)."""
    tail = log.split(marker)[-1]
    return bool(
        re.search(r"worker1 \|.*Task tasks\.notifications\.send_tg_notification\[.*\] received", tail)
    )


def test_a_service_that_cannot_start_says_why_and_one_that_can_starts_at_boot(
    machine: Machine, telegram: FakeTelegram, tmp_path: Path
) -> None:
    # a bad configuration at install: one line, exit 2, nothing registered
    bad = Project(machine, tmp_path / "bad", telegram)
    (bad.root / "p419.toml").write_text('celery = "worker.celery"\nbogus = 1\n', encoding="utf-8")
    refused = bad.service("install")
    assert refused.returncode == 2 and "bogus: unknown key (line 2)" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert bad.service("status").returncode == 2  # no such service: nothing half-installed

    # an account: its password is asked for, never waited for without a console; a step that fails (no such
    # account, found when the service already exists) takes back the service, its parameters, its event source
    (bad.root / "p419.toml").unlink()
    no_password = bad.service("install", "--run-as", "nosuchuser", timeout=60)
    assert no_password.returncode == 2 and "P419_SERVICE_PASSWORD" in no_password.stderr, no_password.stderr
    done = run_windows(
        WINE_PYTHON,
        ["-m", "python419", "service", "install", "--name", bad.name, "--run-as", "nosuchuser"],
        bad.root,
        windows_env(P419_SERVICE_PASSWORD="not-used"),
    )
    assert done.returncode == 2 and "no such account" in done.stderr, done.stdout + done.stderr
    assert "SERVICE_NAME" not in machine.sc_query(bad.name)
    for key in (rf"Services\{bad.name}", rf"Services\EventLog\Application\{bad.name}"):
        found = subprocess.run(
            [WINE, "reg", "query", rf"HKLM\SYSTEM\CurrentControlSet\{key}"],
            env=windows_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
        )
        assert found.returncode != 0, decode(found.stdout)  # the key is gone

    # the API's port, held from the start by another program (here: this test)
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    shop = Project(machine, tmp_path / "shop2", telegram, port=holder.getsockname()[1])
    name = shop.name
    assert shop.service("install", "--broker", "embedded", "--no-redis-password").returncode == 0

    # the configuration broken after the install: the service stops with exit code 2, not retried
    (shop.root / "p419.toml").write_text('celery = "worker.celery"\nbogus = 1\n', encoding="utf-8")
    broken = shop.service("start")
    assert broken.returncode == 1, broken.stdout
    assert f"{name} did not start: last exit" in broken.stdout
    assert "could not start: a configuration error (not retried)" in broken.stdout
    assert "bogus: unknown key (line 2)" in broken.stdout
    sc = machine.sc_query(name)
    assert state(sc) == "STOPPED" and re.search(r"SERVICE_EXIT_CODE\s+:\s+2\b", sc), sc
    status = shop.service("status")
    assert status.returncode == 3 and "service-specific exit code 2" in status.stdout, status.stdout
    assert any(e.startswith(f"{name}: p419 up cannot start (exit 2, not retried)") for e in machine.events())
    (shop.root / "p419.toml").unlink()

    # the port taken: p419 up exits 1; the host records why and ends as a crash (Windows would restart it)
    with holder:
        taken = shop.service("start")
        assert taken.returncode == 1, taken.stdout
        assert f"p419 up exit code 1, failed: api port 127.0.0.1:{shop.port} is not free" in taken.stdout
        status = shop.service("status")
        assert status.returncode == 3, status.stdout
        assert f"api port 127.0.0.1:{shop.port} is not free" in status.stdout
        # Wine's service manager misses the exit (Windows would restart the service): status says so
        assert f"{name}: running for the service manager, but its process" in status.stdout, status.stdout
        assert any(e.startswith(f"{name}: p419 up exited with code 1: api port") for e in machine.events()), (
            machine.events()
        )

    # power off and on: the service manager starts the service at boot, with no command and no console
    machine.power_off()
    machine.boot()
    # the stack's own line ("ready in 0.9s: API http://..."), not a child's ("worker1 ready in 0.4s")
    stack_ready = re.compile(r"(^|\s)ready in [0-9.]+s: API ", re.MULTILINE)
    assert wait_until(lambda: stack_ready.search(shop.log().split("service: starting p419 up")[-1]), 120), (
        shop.log()[-3000:]
    )
    running = shop.service("status")
    assert running.returncode == 0 and "stack: ready" in running.stdout, running.stdout
    assert httpx.get(f"http://127.0.0.1:{shop.port}/health", timeout=10).status_code == 200

    # the host killed hard: its Job Object takes p419 up and the children with it, so nothing holds the port or
    # p419 up's lock against the restart Windows makes (Wine makes none)
    tree = machine.processes()
    hosts = [p for p in tree if "winsvc_host.py" in " ".join(p.cmdline())]
    assert len(hosts) == 1 and len(tree) >= 4, [p.cmdline() for p in tree]  # host, p419 up, api, worker1
    hosts[0].kill()
    assert wait_until(lambda: not alive(tree), 30), alive(tree)
    status = shop.service("status")
    assert status.returncode == 3 and "is gone" in status.stdout, status.stdout

    removed = shop.service("uninstall")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert removed.stdout.startswith(f"removed the Windows service {name}"), removed.stdout
    print("the event log, as Wine's ReportEventW traced it:", *machine.events(), sep="\n  ")
