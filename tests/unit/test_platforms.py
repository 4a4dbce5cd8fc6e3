"""Pure OS decisions, the Windows branch included, by passing the platform explicitly."""

from __future__ import annotations

import signal

import pytest

from python419 import platforms as p
from python419 import redis_server as rs
from python419 import workers as w


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("win32", "windows"),
        ("cygwin", "windows"),
        ("darwin", "macos"),
        ("linux", "linux"),
        ("freebsd14", "linux"),
    ],
)
def test_detect_platform(raw: str, expected: str) -> None:
    assert p.detect_platform(raw) == expected


@pytest.mark.parametrize("requested", [None, "solo", "prefork", "threads", "gevent", "eventlet"])
def test_windows_always_gets_solo(requested: w.Pool | None) -> None:
    choice = w.choose_pool("windows", requested)
    assert choice.pool == "solo"
    assert "fork" in choice.reason
    if requested in (None, "solo"):
        assert choice.warning is None
    else:
        assert choice.warning and f"--pool {requested}" in choice.warning
        assert "p419 up --workers N" in choice.warning


@pytest.mark.parametrize("platform", ["linux", "macos"])
def test_posix_honours_the_request_and_defaults_to_prefork(platform: p.Platform) -> None:
    assert w.choose_pool(platform).pool == "prefork"
    for pool in w.POOLS:
        choice = w.choose_pool(platform, pool)
        assert choice.pool == pool and choice.warning is None


def test_worker_command_on_windows_has_solo_and_no_prefork() -> None:
    group = w.plan_group("windows", w.WorkerGroup(pool="prefork", concurrency=8))
    assert group.processes == 8 and group.per_process == 1
    command = w.worker_command(
        ["python.exe", "launch"], "python419.products.tasks.celery_app", group, "info", "worker1@%h"
    )
    # the plain celery command line, behind p419's launcher (what `p419 up` and `p419 worker` run)
    assert command[:2] == ["python.exe", "launch"]
    assert command[2:6] == ["celery", "-A", "python419.products.tasks.celery_app", "worker"]
    assert "--pool=solo" in command and "--concurrency=1" in command
    assert not any("prefork" in part for part in command)
    assert "--hostname=worker1@%h" in command
    assert "--without-mingle" in command


def test_worker_args_keep_concurrency_for_real_pools() -> None:
    assert "--concurrency=4" in w.worker_args("prefork", concurrency=4)
    assert not any(a.startswith("--concurrency") for a in w.worker_args("threads"))


def test_stopping_children_differs_by_os() -> None:
    assert p.stop_method("windows") == p.StopMethod("ctrl-break", p.CTRL_BREAK_EVENT)
    assert p.stop_method("linux") == p.StopMethod("signal", int(signal.SIGTERM))
    assert p.creation_flags("windows") & p.CREATE_NEW_PROCESS_GROUP
    assert p.creation_flags("linux") == 0 and p.creation_flags("macos") == 0
    assert p.starts_new_session("linux") and not p.starts_new_session("windows")
    assert [p.orphan_guard(x) for x in p.PLATFORMS] == ["job-object", "pdeathsig", "watchdog"]
    assert "SIGBREAK" in p.supervisor_stop_signals("windows")
    assert "SIGTERM" in p.supervisor_stop_signals("macos")


def test_redis_candidates() -> None:
    assert rs.redis_binary_candidates("linux", {}) == ["redis-server"]
    windows = rs.redis_binary_candidates("windows", {"ProgramFiles": r"D:\Apps"})
    assert windows[:2] == ["redis-server.exe", "memurai.exe"]
    assert r"D:\Apps\Memurai\memurai.exe" in windows
    assert "Memurai" in rs.redis_install_hint("windows") and "brew" in rs.redis_install_hint("macos")


def test_find_redis_server_order() -> None:
    on_path = {"redis-server": "/usr/bin/redis-server"}
    files = {"/usr/bin/redis-server", "/opt/redis/bin/redis-server", r"C:\Program Files\Memurai\memurai.exe"}

    def find(
        env: dict[str, str], platform: p.Platform = "linux", path: dict[str, str] | None = None
    ) -> str | None:
        lookup = on_path if path is None else path
        return rs.find_redis_server(platform, env, lookup.get, files.__contains__)

    assert find({}) == "/usr/bin/redis-server"
    assert find({"REDIS_SERVER": "/opt/redis/bin/redis-server"}) == "/opt/redis/bin/redis-server"
    assert find({"REDIS_SERVER": "/missing/redis"}) is None
    assert find({}, path={}) is None
    assert find({}, "windows", path={}) == r"C:\Program Files\Memurai\memurai.exe"


def test_worker_event_heartbeat_only_with_task_events() -> None:
    # The heartbeat's timer cost ~1 s of every warm shutdown; only Flower (task events) needs it.
    assert "--without-heartbeat" in w.worker_args("solo") and "-E" not in w.worker_args("solo")
    with_events = w.worker_args("solo", events=True)
    assert "-E" in with_events and "--without-heartbeat" not in with_events
