"""The plan: a pure function of the project, the settings and the broker decision, previewed for any OS."""

from __future__ import annotations

from pathlib import Path

import pytest

from python419.launch import contract
from python419.platforms import CREATE_NEW_PROCESS_GROUP
from python419.project import Flags
from python419.redis_server import redis_config
from python419.supervisor.plan import PlanError, choose_broker, plan_lines
from tests.plans import plan_for, project_for, settings


def test_broker_choice() -> None:
    url = "redis://127.0.0.1:6379/0"
    pick = lambda mode, **kw: choose_broker(mode, url=kw.pop("url", url), platform="linux", **kw)  # noqa: E731
    assert pick("auto", answers=True, redis_binary=None).kind == "reuse-redis"
    assert pick("auto", answers=False, redis_binary="/usr/bin/redis-server").kind == "start-redis"
    fallback = pick("auto", answers=False, redis_binary=None)
    assert (
        fallback.kind == "embedded" and fallback.loud and "apt-get install redis-server" in fallback.message
    )
    assert pick("embedded", answers=True, redis_binary="x").kind == "embedded"
    remote = pick("auto", url="redis://cache.internal:6379/0", answers=False, redis_binary="x")
    assert remote.kind == "remote-redis"
    # 127.0.0.2 is loopback too: the same answer as the doctor's (one rule, python419.addresses)
    assert pick("auto", url="redis://127.0.0.2:6379/0", answers=False, redis_binary="x").kind == "start-redis"
    with pytest.raises(PlanError, match="no Redis server found"):
        pick("redis", answers=False, redis_binary=None)


def test_windows_plan_is_solo_one_process_per_unit_of_concurrency(tmp_path: Path) -> None:
    plan = plan_for(
        "windows",
        tmp_path,
        Flags(workers=2, pool="prefork", concurrency=2),
        redis_binary="memurai.exe",
        python="C:\\py\\python.exe",
        supervisor_pid=99,
    )
    assert [c.name for c in plan.children] == ["redis", "api", "worker1", "worker2", "worker3", "worker4"]
    for n, worker in enumerate(plan.by_kind("worker"), start=1):
        assert worker.argv[:5] == [
            *contract.launcher_argv("C:\\py\\python.exe"),
            "celery",
            "-A",
            "python419.products.tasks.celery_app",
        ]
        assert "--pool=solo" in worker.argv and "--concurrency=1" in worker.argv
        assert f"--hostname=worker{n}@%h" in worker.argv and "prefork" not in " ".join(worker.argv)
        assert worker.env["P419_STACK_READY_FILE"].endswith(f"worker{n}.ready")
        assert worker.stop_file is not None and worker.env["P419_STACK_STOP_FILE"] == str(worker.stop_file)
    assert plan.creation_flags == CREATE_NEW_PROCESS_GROUP and not plan.new_session
    assert plan.stop == "ctrl-break" and plan.orphan_guard == "job-object"
    assert any("WinError" in w for w in plan.warnings)
    redis_argv = plan.by_kind("redis")[0].argv
    assert redis_argv[:5] == ["memurai.exe", "--port", "6379", "--bind", "127.0.0.1"]
    assert redis_argv[redis_argv.index("--dir") + 1] == str(tmp_path / "redis")
    assert plan.env["P419_STACK_BROKER"] == "redis" and plan.env["P419_STACK_SUPERVISOR_PID"] == "99"
    assert plan.env["CELERY_BROKER_URL"] == "redis://127.0.0.1:6379/0"
    text = "\n".join(plan_lines(plan))
    assert "--pool=solo" in text and "ctrl-break" in text and "0x200" in text
    assert '"C:\\py\\python.exe" -m' not in text  # no quoting needed: list2cmdline, as Windows takes it


def test_linux_plan_embedded_prefork_and_queues(tmp_path: Path) -> None:
    plan = plan_for(
        "linux",
        tmp_path,
        Flags(workers=2, pool="prefork", concurrency=3, queues=("hi", "lo")),
        mode="embedded",
    )
    assert [c.kind for c in plan.children] == ["api", "worker", "worker"]
    assert (
        plan.env["P419_STACK_BROKER"] == "embedded"
        and plan.env["CELERY_BROKER_URL"] == "filesystem://localhost/"
    )
    worker = plan.by_kind("worker")[0].argv
    assert "--concurrency=3" in worker and "--pool=prefork" in worker
    assert worker[worker.index("-Q") + 1] == "hi,lo"
    assert plan.creation_flags == 0 and plan.new_session and plan.stop == "signal"
    assert plan.orphan_guard == "pdeathsig" and plan.by_kind("worker")[0].stop_file is None


def test_macos_wraps_redis_in_the_guard(tmp_path: Path) -> None:
    plan = plan_for("macos", tmp_path)
    assert plan.orphan_guard == "watchdog"
    assert plan.by_kind("redis")[0].argv[:4] == [
        "p419-python",
        "-m",
        "python419.supervisor.guard",
        "redis-server",
    ]  # p419's own
    assert plan_for("linux", tmp_path).by_kind("redis")[0].argv[0] == "redis-server"


def test_reload_restarts_processes_never_uvicorns_reloader(tmp_path: Path) -> None:
    # uvicorn's reloader stops its server with CTRL_C_EVENT on Windows (the whole console): p419 restarts the
    # API process itself, on every OS, through its launcher (whose stop file needs no console).
    for platform in ("windows", "linux"):
        plan = plan_for(platform, tmp_path, Flags(reload=True), mode="embedded")
        api = plan.by_kind("api")[0]
        assert plan.project.reload and "--reload" not in api.argv and api.watchdog
        assert not any("CTRL_C" in w for w in plan.warnings)
    windows = plan_for("windows", tmp_path, Flags(reload=True), mode="embedded")
    assert windows.by_kind("api")[0].stop_file is not None and windows.stop == "ctrl-break"


def test_only_workers_joins_a_remote_stack_and_refuses_the_embedded_broker(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="cannot span hosts"):
        plan_for("linux", tmp_path, Flags(only=("workers",)), mode="embedded")
    with pytest.raises(PlanError, match="no Redis answers"):
        plan_for("linux", tmp_path, Flags(only=("workers",)))  # would have to start Redis here
    plan = plan_for("linux", tmp_path, Flags(only=("workers",)), redis_binary=None, mode="redis-remote")
    assert [c.kind for c in plan.children] == ["worker"]


def test_beat_and_flower(tmp_path: Path) -> None:
    plan = plan_for("windows", tmp_path, config={"celery": "main.celery", "api": "main:app", "beat": True})
    [beat] = plan.by_kind("beat")
    assert beat.argv[2:6] == ["celery", "-A", "main.celery", "beat"]
    assert beat.argv[beat.argv.index("--schedule") + 1] == str(tmp_path / "beat" / "celerybeat-schedule")
    assert "--pidfile" not in " ".join(beat.argv) and beat.env["P419_STACK_BEAT_LOCK"] == str(
        tmp_path / "beat"
    )


def test_user_project_plan(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    config = {
        "app_dir": "project",
        "api": "main:app",
        "celery": "worker.celery",
        "ready_path": "/ping",
        "env": {"DATABASE_URL": "sqlite:///x.db", "API_TOKEN": "s3cret"},
        "workers": [{"name": "fast", "queues": ["high_priority", "default"]}, {"name": "slow", "count": 2}],
    }
    plan = plan_for("linux", tmp_path, config=config, mode="embedded")
    api = plan.by_kind("api")[0]
    assert api.argv == [
        *contract.launcher_argv("py"),
        "uvicorn",
        "main:app",
        "--host",
        "127.0.0.1",
        "--port",
        "8000",
    ]
    assert api.cwd == tmp_path / "project" and api.ready is not None
    assert api.ready.kind == "http" and api.ready.target == "http://127.0.0.1:8000/ping"
    assert [c.name for c in plan.by_kind("worker")] == ["fast1", "slow1", "slow2"]
    fast = plan.by_kind("worker")[0].argv
    assert (
        fast[2:6] == ["celery", "-A", "worker.celery", "worker"]
        and fast[fast.index("-Q") + 1] == "high_priority,default"
    )
    assert "DATABASE_URL" not in plan.env and plan.env["P419_STACK_CELERY_APP"] == "worker.celery"
    # [env] reaches every child under the shell's environment, which wins over it
    from python419.supervisor.process import child_environment

    child = child_environment(plan, plan.by_kind("api")[0], {"API_TOKEN": "from-the-shell"})
    assert child["DATABASE_URL"] == "sqlite:///x.db" and child["API_TOKEN"] == "from-the-shell"
    text = "\n".join(plan_lines(plan))
    assert "s3cret" not in text and "API_TOKEN=***" in text and "DATABASE_URL=sqlite:///x.db" in text


def test_api_command_placeholders_are_filled(tmp_path: Path) -> None:
    """p419 init writes {python}, {host} and {port} for a server other than uvicorn (hypercorn, granian)."""
    plan = plan_for(
        "linux",
        tmp_path,
        config={"api_command": "{python} -m hypercorn --bind {host}:{port} app.main:app", "celery": "app"},
        python="/p/.venv/bin/python",
    )
    assert plan.by_kind("api")[0].argv == [
        "/p/.venv/bin/python",
        "-m",
        "hypercorn",
        "--bind",
        "127.0.0.1:8000",
        "app.main:app",
    ]


def test_api_command_is_ready_on_tcp(tmp_path: Path) -> None:
    plan = plan_for(
        "linux", tmp_path, config={"api_command": "python manage.py runserver 8000", "celery": "proj"}
    )
    api = plan.by_kind("api")[0]
    assert api.argv == ["python", "manage.py", "runserver", "8000"]
    assert api.ready is not None and api.ready.kind == "tcp" and api.ready.target == "127.0.0.1:8000"


def test_redis_password_is_decoded_for_the_server() -> None:
    # Clients log in with the decoded password: the server must be given the same one.
    assert redis_config("redis://:p%40ssWord99@127.0.0.1:6379/0") == "requirepass p@ssWord99\n"
    assert redis_config("redis://127.0.0.1:6379/0") is None


def test_flower_without_the_package_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import python419.supervisor.plan as plan_module

    config = {"celery": "main.celery", "api": "main:app", "flower": True}
    monkeypatch.setattr(plan_module, "flower_installed", lambda: False)  # as on a machine without it
    plan = plan_for("linux", tmp_path, config=config)
    assert not plan.by_kind("flower") and any("pip install flower" in w for w in plan.warnings)
    assert not any("-E" in c.argv for c in plan.by_kind("worker"))
    monkeypatch.setattr(plan_module, "flower_installed", lambda: True)
    plan = plan_for("linux", tmp_path, config=config)
    [flower] = plan.by_kind("flower")
    assert "--address=127.0.0.1" in flower.argv and "--persistent=True" in flower.argv
    assert all("-E" in c.argv for c in plan.by_kind("worker"))  # task events on, for Flower


def test_a_verb_gives_a_project_process_what_up_gives_its_worker(tmp_path: Path) -> None:
    """`p419 worker`, `api`, `send TASK` and the doctor's probe once assembled their own environments (no env
    files, [env] over the shell's): one rule now, `up`'s, short of the supervisor's own variables."""
    from python419.broker import redis_target
    from python419.supervisor.process import child_environment, verb_environment

    (tmp_path / "dev.env").write_text("DATABASE_URL=postgres://db/app\nFROM_FILE=1\nAPI_TOKEN=file\n")
    config = {
        "celery": "worker.celery",
        "env_files": ["dev.env"],
        "env": {"API_TOKEN": "config", "MODE": "x"},
    }
    plan = plan_for("linux", tmp_path, config=config, python="/p/.venv/bin/python")
    shell = {"API_TOKEN": "shell", "PATH": "/usr/bin", "PYTHONPATH": "/lib/extra"}
    under_up = child_environment(plan, plan.by_kind("worker")[0], shell)
    project = project_for(tmp_path, config=config)
    alone = verb_environment(
        project, settings("linux", tmp_path), redis_target(plan.target.url), "/p/.venv/bin/python", shell
    )
    up_only = {"P419_STACK_SUPERVISOR_PID", "P419_STACK_GRACE", *plan.by_kind("worker")[0].env}
    assert alone == {k: v for k, v in under_up.items() if k not in up_only}
    assert alone["API_TOKEN"] == "shell" and alone["MODE"] == "x" and alone["FROM_FILE"] == "1"
    assert alone["PATH"] == "/p/.venv/bin:/usr/bin" and alone["PYTHONPATH"] == f"{tmp_path}:/lib/extra"
    assert alone["P419_STACK_CELERY_APP"] == "worker.celery" and alone["P419_STACK_ENV_FILES"].endswith(
        "dev.env"
    )
