"""The launcher in front of every child: which command lines it starts itself, what it sets on the user's app."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from python419.launch import child as launch
from python419.launch import contract
from tests.conftest import clean_environ
from tests.procs import Proc, RedisServer, free_port, spawn, wait_until


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-A", "proj", "worker", "--pool=solo", "-Q", "a,b"], ["--pool=solo", "-Q", "a,b"]),
        (["--app", "proj.celery:app", "worker"], []),
        (["--app=proj", "worker", "-l", "info"], ["-l", "info"]),
        (["-Aproj", "worker", "-c", "2"], ["-c", "2"]),
        # anything else the `celery` group would act on: the whole celery program
        (["-A", "proj", "-b", "redis://h/0", "worker"], None),
        (["--workdir", "/tmp", "-A", "proj", "worker"], None),
        (["worker"], None),
        (["-A", "proj", "beat"], None),
        (["-A", "proj", "inspect", "ping"], None),
        # pools that monkey-patch the interpreter need celery's early patching; --detach re-executes celery
        (["-A", "proj", "worker", "-P", "gevent"], None),
        (["-A", "proj", "worker", "--pool=eventlet"], None),
        (["-A", "proj", "worker", "--detach"], None),
    ],
)
def test_which_celery_command_lines_the_launcher_starts_itself(
    args: list[str], expected: list[str] | None
) -> None:
    assert launch.direct_worker_args(args) == expected


def test_on_redis_the_apps_transport_options_stand() -> None:
    app = Celery("t", set_as_current=False)
    app.conf.broker_transport_options = {"visibility_timeout": 60}
    launch.configure_for_stack(app, {contract.BROKER: "redis"})
    assert app.conf.broker_transport_options == {"visibility_timeout": 60}


def test_an_idle_worker_stops_without_sitting_out_its_brpop(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """kombu closes a channel only once the BRPOP in flight has answered; the launcher ends that BRPOP with
    CLIENT UNBLOCK. With a 60 s BRPOP the stop would otherwise take up to a minute."""
    slow_poll = 'app.conf.broker_transport_options = {"polling_interval": 60}\n'
    with direct_worker(redis_server, 11, tmp_path, "idle", app_tail=slow_poll) as worker:
        time.sleep(1.0)  # in its BRPOP by now
        asked = time.monotonic()
        worker.popen.send_signal(signal.SIGTERM)
        assert worker.popen.wait(timeout=90) == 0
        assert time.monotonic() - asked < 20, "the stop waited for the 60 s BRPOP to time out"


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_the_unblock_ends_exactly_the_waiting_connections_brpop(tmp_path: Path, host: str) -> None:
    """Found by its address in CLIENT LIST (IPv6 in brackets there), ended as a timeout, and the connection
    that asked is closed again."""
    server = RedisServer(free_port(), tmp_path, binds=("127.0.0.1", "::1")).start()
    port = server.port
    watcher = redis.Redis(host="127.0.0.1", port=port)
    waiter = redis.Redis(host=host, port=port, single_connection_client=True, socket_timeout=90)
    bystander = redis.Redis(host=host, port=port, single_connection_client=True, socket_timeout=90)
    got: dict[str, object] = {}

    def wait(name: str, client: redis.Redis) -> None:
        began = time.monotonic()
        got[name] = (client.brpop(["nothing-here"], timeout=60), time.monotonic() - began)

    try:
        threads = [
            threading.Thread(target=wait, args=(n, c), daemon=True)
            for n, c in (("w", waiter), ("b", bystander))
        ]
        for thread in threads:
            thread.start()
        assert wait_until(lambda: sum(c["cmd"] == "brpop" for c in watcher.client_list()) == 2, 10)
        clients = len(watcher.client_list())
        launch.unblock_client_at(waiter.connection_pool, waiter.connection._sock.getsockname())
        threads[0].join(10)
        value, took = got["w"]  # type: ignore[misc]
        assert value is None and took < 10, got  # as if it had timed out, not after 60 s
        assert "b" not in got, "another client's BRPOP was ended too"
        assert len(watcher.client_list()) == clients, "the connection that unblocked was left open"
        watcher.lpush("nothing-here", "for the bystander")
        threads[1].join(10)
        assert got["b"][0] == (b"nothing-here", b"for the bystander")  # type: ignore[index]
    finally:
        server.stop()


APP = """
import sys
from celery import Celery, bootsteps
from celery.signals import worker_ready
from click import Option

app = Celery("direct", broker={url!r})
app.conf.worker_hijack_root_logger = False
app.user_options["worker"].add(Option(["--greeting"], default="none", help="an app's own worker option"))


GOT = {{}}


class Greeter(bootsteps.StartStopStep):
    def __init__(self, parent, greeting="none", **options):
        super().__init__(parent, **options)
        GOT["greeting"], GOT["pool"] = greeting, parent.pool_cls.__name__


app.steps["worker"].add(Greeter)


@app.task(name="slow")
def slow(path):
    import time
    with open(path + ".started", "w"):
        pass
    time.sleep(1.5)
    with open(path, "w") as f:
        f.write("done")


@worker_ready.connect
def report(**_):
    with open({out!r}, "w") as f:
        f.write(f"{{GOT['greeting']}} {{'celery.bin.celery' in sys.modules}} {{GOT['pool']}}")
"""


@contextlib.contextmanager
def direct_worker(
    redis_server: RedisServer, db: int, tmp_path: Path, name: str, *options: str, app_tail: str = ""
) -> Iterator[Proc]:
    """APP's solo worker through the launcher on Redis database `db`, ready (its report written); killed on
    the way out if a test left it running. Its report is tmp_path/report.txt, its log `.output()`."""
    broker = redis_server.url.rsplit("/", 1)[0] + f"/{db}"
    report = tmp_path / "report.txt"
    (tmp_path / "directapp.py").write_text(APP.format(url=broker, out=str(report)) + app_tail)
    argv = [*contract.launcher_argv(sys.executable), "celery", "-A", "directapp", "worker"]
    argv += ["--pool=solo", "--without-mingle", "--without-gossip", *options, "-n", f"{name}@%h"]
    env = clean_environ() | {contract.BROKER: "redis", "PYTHONUNBUFFERED": "1"}
    worker = spawn("worker", argv, env, tmp_path, cwd=tmp_path)
    try:
        wait_until(lambda: report.exists() or worker.popen.poll() is not None, 60)
        assert report.exists(), worker.output()
        yield worker
    finally:
        if worker.popen.poll() is None:
            worker.popen.kill()
            worker.popen.wait()


def test_the_launcher_runs_celerys_own_worker_command_with_the_apps_options(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """`-A app worker ...` starts Celery's worker command without the `celery` group (and its plugins) in front,
    with the app's own worker options, and stops warmly on SIGTERM with Celery's exit status."""
    with direct_worker(redis_server, 9, tmp_path, "direct", "--greeting", "hello") as worker:
        time.sleep(0.1)  # the report is written once; let it land
        assert (tmp_path / "report.txt").read_text() == "hello False TaskPool"
        worker.popen.send_signal(signal.SIGTERM)
        assert worker.popen.wait(timeout=30) == 0
    assert "Warm shutdown" in worker.output()


def test_an_unknown_worker_option_is_celerys_usage_error(redis_server: RedisServer, tmp_path: Path) -> None:
    (tmp_path / "directapp.py").write_text(
        APP.format(url=redis_server.url.rsplit("/", 1)[0] + "/9", out=str(tmp_path / "x"))
    )
    argv = [
        *contract.launcher_argv(sys.executable),
        "celery",
        "-A",
        "directapp",
        "worker",
        "--no-such-option",
    ]
    done = subprocess.run(
        argv, cwd=tmp_path, env=clean_environ() | {"PYTHONUNBUFFERED": "1"}, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert (
        "Usage: celery worker [OPTIONS]" in done.stderr and "No such option '--no-such-option'" in done.stderr
    )
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "x").exists()  # never started


def test_sigterm_mid_task_lets_the_task_finish_and_an_idle_worker_stop_at_once(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """The launcher's quick stop when idle must not cut a task short: Celery's warm shutdown finishes it."""
    result = tmp_path / "task-result"
    client = Celery("t", broker=redis_server.url.rsplit("/", 1)[0] + "/10", set_as_current=False)
    try:
        with direct_worker(redis_server, 10, tmp_path, "slow") as worker:
            client.send_task("slow", args=[str(result)])
            started = Path(str(result) + ".started")
            assert wait_until(started.exists, 60), worker.output()
            worker.popen.send_signal(signal.SIGTERM)
            assert worker.popen.wait(timeout=30) == 0
            assert result.read_text() == "done"  # finished, not cut short
    finally:
        client.close()


SLOW_APP = """
import os, time
from celery import Celery
app = Celery("slowapp")

@app.task(name="slow")
def slow(path):
    open(path + ".started", "w").close()
    time.sleep(2)
    with open(path, "w") as f:
        f.write("done")
"""


def test_a_task_finished_during_a_warm_stop_is_acked_on_old_celery(pinned_venv: Path, tmp_path: Path) -> None:
    """Celery 5.2.7 on the embedded broker: its synchronous loop checked for the stop before sending the ack
    of the task that had just finished, so kombu put that message back and the next start ran it again. The
    launcher sends pending acks first: after the warm stop the queue is empty."""
    from python419.broker import embedded_target, make_embedded_folders

    target = embedded_target(tmp_path / "broker")
    make_embedded_folders(target)
    (tmp_path / "slowapp.py").write_text(SLOW_APP)
    python = str(pinned_venv / "bin" / "python")
    argv = [*contract.launcher_argv(python), "celery", "-A", "slowapp", "worker", "--pool=solo"]
    argv += ["--without-mingle", "--without-gossip", "--without-heartbeat", "-n", "old@%h"]
    ready = tmp_path / "ready"
    env = clean_environ() | target.child_env() | {contract.READY_FILE: str(ready), "PYTHONUNBUFFERED": "1"}
    # as under p419 up: the supervisor's pid (the watchdog's thread; Celery < 5.3 aborts the task in hand on
    # SIGTERM when the worker has no other thread)
    env[contract.SUPERVISOR_PID] = str(os.getpid())
    worker = spawn("old", argv, env, tmp_path, cwd=tmp_path)
    client = Celery("c", broker=target.url, set_as_current=False)
    client.conf.broker_transport_options = target.transport_options
    try:
        assert wait_until(ready.exists, 60), worker.output()
        result = tmp_path / "result"
        client.send_task("slow", args=[str(result)])
        assert wait_until(Path(str(result) + ".started").exists, 30), worker.output()
        worker.popen.send_signal(signal.SIGTERM)
        assert worker.popen.wait(timeout=30) == 0, worker.output()
        assert result.read_text() == "done"
        assert "Restoring" not in worker.output(), worker.output()
        assert not list((tmp_path / "broker" / "queue").glob("*.msg")), (
            "the finished task went back in the queue"
        )
    finally:
        client.close()
        if worker.popen.poll() is None:
            worker.popen.kill()
