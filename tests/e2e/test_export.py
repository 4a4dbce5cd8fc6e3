"""`p419 export` and `p419 service` as a user runs them, on copies of the fixture projects (tests/projects/).

- compose: `p419 init` on the file `p419 export compose` wrote gives back the configuration `p419 init` made from
  the project's own compose file or Procfile (every fixture project), and the file is valid by the Compose
  Specification's JSON schema;
- systemd: the unit passes `systemd-analyze verify`, and its ExecStart, run as systemd runs it (the unit's
  WorkingDirectory and Environment, a NOTIFY_SOCKET, SIGTERM to stop it: KillMode=mixed), runs the project:
  READY=1 once the API answers (on the port the config's [env] sets over the env file's), exit 0 after the stop;
- service: on this machine (not booted with systemd) one line naming what is missing, exit 2, nothing written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import psutil
import pytest
import yaml

from python419.project import parse_config, read_toml
from python419.supervisor.notify import NOTIFY_VARIABLES
from tests.conftest import clean_environ
from tests.procs import all_gone, free_port, kill_tree
from tests.supervisor.test_systemd import NotifyListener
from tests.user_stacks import copy_project, p419

FIXTURES = ("flat", "factory", "package", "pinned", "template", "fastapi-run", "hypercorn", "procfile-beside")
SCHEMA = Path(__file__).parents[1] / "unit" / "test_export_compose_spec.json"
# What `p419 up` sets for every child itself, over the config's [env]: compose must write them into each
# service (it has no supervisor), and `p419 init` reads them back into [env].
STACK_SETS = {"CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"}
SOURCES = ("docker-compose.yml", "compose.yaml", "Procfile")


def env() -> dict[str, str]:
    # A Redis port nobody uses: the dry runs below say "starting redis-server" the same way each time.
    return {**clean_environ(), "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}


def init(root: Path, environ: dict[str, str]) -> dict[str, Any]:
    done = p419(root, environ, "init")
    assert done.returncode == 0, done.stdout + done.stderr
    return read_config(root)


def read_config(root: Path) -> dict[str, Any]:
    return dataclasses.asdict(parse_config(read_toml(root / "p419.toml"), "p419.toml"))


def effective(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration as `p419 up` runs it: env_files unset is [".env"]; the variables p419 sets itself over
    [env] do not count."""
    config = dict(config)
    config["env"] = {k: v for k, v in config["env"].items() if k not in STACK_SETS}
    if config["env_files"] is None:
        config["env_files"] = [".env"]
    return config


def dry_run(root: Path, environ: dict[str, str]) -> list[str]:
    done = p419(root, environ, "up", "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [re.sub(r"SUPERVISOR_PID=\d+", "SUPERVISOR_PID=N", line) for line in done.stdout.splitlines()]
    # Not what runs: the config's [env] as written (the children's environment is the line before it).
    return [line for line in lines if not line.startswith("[env] of the config")]


@pytest.fixture(scope="module")
def validator() -> Any:
    return jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))


@pytest.mark.parametrize("name", FIXTURES)
def test_init_reads_back_what_export_compose_wrote(tmp_path: Path, validator: Any, name: str) -> None:
    root = copy_project(tmp_path, name)
    environ = env()
    original = init(root, environ)  # from the project's own compose file / Procfile
    plan = dry_run(root, environ)
    for source in SOURCES:
        if (root / source).exists():
            (root / source).rename(root / f"{source}.orig")
    done = p419(root, environ, "export", "compose")
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stderr and "Traceback" not in done.stderr
    exported = yaml.safe_load((root / "docker-compose.yml").read_text())
    assert [str(e).splitlines()[0] for e in validator.iter_errors(exported)] == []
    services = exported["services"]
    assert services["redis"]["image"] == "redis:7"
    assert all(
        s["environment"]["CELERY_BROKER_URL"] == "redis://redis:6379/0"
        for n, s in services.items()
        if n != "redis"
    )
    (root / "p419.toml").rename(root / "p419.toml.first")
    again = init(root, environ)  # from the exported file
    assert effective(again) == effective(original)
    # ... and what it adds is exactly the broker p419 sets itself, on loopback
    added = {k: v for k, v in again["env"].items() if k not in original["env"]}
    assert set(added) <= STACK_SETS and set(added.values()) <= {"redis://127.0.0.1:6379/0"}
    assert dry_run(root, environ) == plan  # the same stack: every child's argv, folder, environment


def test_a_groups_count_goes_out_as_replicas_and_comes_back(tmp_path: Path) -> None:
    """Two worker groups, one of three processes: export compose writes deploy.replicas, init reads it back
    (it was lost on the way: the last stop's note)."""
    root = copy_project(tmp_path, "flat")
    environ = env()
    init(root, environ)
    config = (root / "p419.toml").read_text(encoding="utf-8")
    config = config.split("[[workers]]")[0] + (
        '[[workers]]\nname = "fast"\ncount = 3\nqueues = ["celery"]\n\n[[workers]]\nname = "slow"\n'
    )
    (root / "p419.toml").write_text(config, encoding="utf-8")
    wanted = read_config(root)["workers"]
    for source in SOURCES:
        if (root / source).exists():
            (root / source).rename(root / f"{source}.orig")
    assert p419(root, environ, "export", "compose").returncode == 0
    exported = yaml.safe_load((root / "docker-compose.yml").read_text())
    assert exported["services"]["fast"]["deploy"] == {"replicas": 3}
    (root / "p419.toml").rename(root / "p419.toml.first")
    assert init(root, environ)["workers"] == wanted


def test_export_compose_keeps_the_users_own_file(tmp_path: Path) -> None:
    root = copy_project(tmp_path, "flat")
    environ = env()
    init(root, environ)
    theirs = (root / "docker-compose.yml").read_text()
    done = p419(root, environ, "export", "compose")
    assert done.returncode == 2 and "exists" in done.stderr and "--force" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and (root / "docker-compose.yml").read_text() == theirs
    printed = p419(root, environ, "export", "compose", "-")
    assert (
        printed.returncode == 0
        and yaml.safe_load(printed.stdout)["services"]["api"]["working_dir"] == "/app/project"
    )
    elsewhere = p419(root, environ, "export", "compose", "deploy/compose.yaml")
    assert elsewhere.returncode == 0, elsewhere.stderr
    written = yaml.safe_load((root / "deploy" / "compose.yaml").read_text())
    assert written["services"]["api"]["build"] == ".." and written["services"]["api"]["volumes"] == [
        "..:/app"
    ]
    assert p419(root, environ, "export", "compose", "--force").returncode == 0
    assert (root / "docker-compose.yml").read_text() != theirs


def test_export_compose_of_no_project_is_one_line(tmp_path: Path) -> None:
    done = p419(tmp_path, clean_environ(), "export", "compose", "-")
    assert done.returncode == 2 and "no p419 configuration here" in done.stderr and done.stdout == ""


# --- systemd ----------------------------------------------------------------------------------------------


@pytest.fixture
def flat_with_venv(tmp_path: Path, latest_venv: Path) -> Callable[[], Path]:
    def make() -> Path:
        root = copy_project(tmp_path, "flat")
        (root / ".venv").symlink_to(latest_venv, target_is_directory=True)
        init(root, clean_environ())
        # Ports of its own, through the env file (p419 up reads it, under the unit as from a shell); the
        # config's [env] sets the API's port over the env file's, as `p419 init` points an env file's compose
        # host names at loopback there.
        (root / ".env").write_text(
            f"REDIS_URL=redis://127.0.0.1:{free_port()}/0\nP419_API_PORT={free_port()}\n# a comment\n"
        )
        config = root / "p419.toml"
        config.write_text(
            config.read_text().replace("[env]\n", f'[env]\nP419_API_PORT = "{free_port()}"\n', 1)
        )
        return root

    return make


def export_unit(root: Path, *args: str) -> str:
    done = p419(root, clean_environ(), "export", "systemd", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def unit_values(text: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values.setdefault(key, []).append(value)
    return values


def test_the_unit_of_a_project(flat_with_venv) -> None:
    root = flat_with_venv()
    text = export_unit(root, "--watchdog", "30", "--grace", "15")
    values = unit_values(text)
    exec_start = shlex.split(values["ExecStart"][0])
    assert os.path.isabs(exec_start[0]) and Path(exec_start[0]).name == "p419"
    assert exec_start[1:] == [
        "up",
        "--grace",
        "15",
        "--ready-timeout",
        "30",
        "--redis-password",
        "--python",
        str(root / ".venv" / "bin" / "python"),
    ]
    assert values["WorkingDirectory"] == [str(root)] and "EnvironmentFile" not in values
    assert (
        values["Type"] == ["notify"]
        and values["NotifyAccess"] == ["main"]
        and values["KillMode"] == ["mixed"]
    )
    assert values["TimeoutStopSec"] == ["25"] and values["Restart"] == ["on-failure"]
    assert values["WatchdogSec"] == ["30"] and values["SyslogIdentifier"] == ["p419-flat"]


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed (apt-get install systemd)"
)
def test_the_unit_passes_systemd_analyze_verify(flat_with_venv, tmp_path: Path) -> None:
    root = flat_with_venv()
    unit = tmp_path / "p419-flat.service"
    unit.write_text(export_unit(root, "--watchdog", "30"))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr
    # ... and the same tool refuses a broken one (so the pass above means something)
    broken = tmp_path / "p419-broken.service"
    broken.write_text(
        unit.read_text().replace("Type=notify", "Type=notifyy").replace("KillMode=", "KilMode=")
    )
    done = subprocess.run(
        ["systemd-analyze", "verify", str(broken)], capture_output=True, text=True, timeout=60
    )
    assert "notifyy" in done.stderr and "KilMode" in done.stderr
    # A user unit, checked by the user manager's rules (its runtime folder: one of the test's own).
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    user_unit = tmp_path / "p419-flat-user.service"
    user_unit.write_text(export_unit(root, "--user"))
    done = subprocess.run(
        ["systemd-analyze", "--user", "verify", str(user_unit)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
    )
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr


def systemd_environment(values: dict[str, list[str]]) -> dict[str, str]:
    """What systemd gives a system service's main process: its own PATH and LANG, the unit's EnvironmentFile=
    (in order; p419's units have none) and Environment= (no shell, no HOME without User=)."""
    environ = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    for path in values.get("EnvironmentFile", []):
        for line in Path(path.lstrip("-")).read_text().splitlines():
            if line.strip() and not line.lstrip().startswith(("#", ";")):
                key, _, value = line.partition("=")
                environ[key.strip()] = value.strip().strip("\"'")
    for assignment in values.get("Environment", []):
        key, _, value = assignment.partition("=")
        environ[key] = value
    return environ


def test_the_unit_runs_the_project_as_systemd_would(flat_with_venv, tmp_path: Path) -> None:
    root = flat_with_venv()
    values = unit_values(export_unit(root, "--watchdog", "2"))
    argv = [w.replace("%%", "%").replace("$$", "$") for w in shlex.split(values["ExecStart"][0])]
    notify = NotifyListener(str(tmp_path / "notify.sock"))
    environ = systemd_environment(values)
    assert "P419_API_PORT" not in environ and "REDIS_URL" not in environ  # p419 up reads .env itself
    given = re.search(r'P419_API_PORT = "(\d+)"', (root / "p419.toml").read_text())
    assert given is not None
    port = given.group(1)  # the config's [env] over the env file
    answered: dict[str, Any] = {}
    notify.on["READY=1"] = lambda _: answered.update(
        status=httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code
    )
    environ.update(NOTIFY_SOCKET=notify.address, WATCHDOG_USEC=str(2 * 1_000_000))
    log = (tmp_path / "journal.log").open("wb")
    proc = subprocess.Popen(
        argv, cwd=values["WorkingDirectory"][0], env=environ, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        notify.wait_for("READY=1", 90)
        assert answered == {"status": 200}, (answered, notify.errors)
        assert httpx.get(f"http://127.0.0.1:{port}/").json() == {"hello": "flat"}
        kids = psutil.Process(proc.pid).children(recursive=True)
        assert {"NOTIFY_SOCKET"} & set().union(*(set(k.environ()) for k in kids)) == set()
        proc.send_signal(signal.SIGTERM)  # systemctl stop, KillMode=mixed: the main process only
        assert proc.wait(float(values["TimeoutStopSec"][0])) == 0
        assert psutil.wait_procs(kids, timeout=10) and all_gone(kids)
    finally:
        if proc.poll() is None:
            kill_tree(proc.pid)
        log.close()
        notify.close()
    ready, stopping = notify.first("READY=1"), notify.first("STOPPING=1")
    assert ready is not None and stopping is not None and ready < stopping, notify.texts()
    assert notify.got[ready].fields()["STATUS"].startswith("ready: api, 1 worker")
    assert notify.got[stopping].fields()["STATUS"] == "stopping: received SIGTERM"
    assert {d.pid for d in notify.got} == {proc.pid}
    output = (tmp_path / "journal.log").read_text()
    assert f"python: {root}/.venv/bin/python" in output, output[:3000]  # the project's own interpreter
    assert (root / ".p419" / "redis" / "password").is_file()  # --redis-password: the service default
    assert "Traceback" not in output


# --- p419 service -----------------------------------------------------------------------------------------


@pytest.mark.skipif(
    Path("/run/systemd/system").is_dir(), reason="this machine runs systemd: not touched by tests"
)
def test_p419_service_here_says_what_is_missing(tmp_path: Path) -> None:
    root = copy_project(tmp_path, "flat")
    environ = {**clean_environ(), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    init(root, environ)
    for args in (
        ["install", "--user"],
        ["install"],
        ["status"],
        ["uninstall", "--user"],
        ["start", "--name", "x"],
    ):
        done = p419(root, environ, "service", *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        line = done.stderr.strip()
        assert len(line.splitlines()) == 1 and "Traceback" not in line
        expected = "needs systemd as the init system" if shutil.which("systemctl") else "needs systemctl"
        assert expected in line, line
    assert not (tmp_path / "config").exists()  # nothing written
    assert not any(Path("/etc/systemd/system").glob("p419-flat*"))
    helped = subprocess.run(
        [sys.executable, "-m", "python419", "service", "--help"], capture_output=True, text=True, timeout=30
    )
    assert "a Windows" in helped.stdout and "service (Windows)" in helped.stdout


@pytest.fixture(autouse=True)
def _no_notify_socket_here() -> Iterator[None]:
    """These tests run p419 with their own NOTIFY_SOCKET; one from the machine's service manager must not leak."""
    saved = {k: os.environ.pop(k) for k in NOTIFY_VARIABLES if k in os.environ}
    yield
    os.environ.update(saved)
