"""The p419 config file's checks (project.py, standard library only): each rule accepted and refused, and the
one-line message a user reads, with the key and its line, for p419.toml and for pyproject.toml [tool.p419]."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from python419 import project as p
from python419.project import (
    FORMS,
    ConfigSource,
    Flags,
    ProjectConfig,
    ProjectError,
    StepConfig,
    WorkerGroupConfig,
    find_config,
    key_line,
    parse_config,
    resolve_project,
)
from python419.settings import check_broker
from python419.workers import POOLS


def ok(**data: Any) -> ProjectConfig:
    return parse_config(data, "p419.toml")


def refused(**data: Any) -> str:
    """The message, without the `p419.toml: ` prefix."""
    with pytest.raises(ProjectError) as caught:
        parse_config(data, "p419.toml")
    message = str(caught.value)
    assert message.startswith("p419.toml: "), message
    return message.removeprefix("p419.toml: ")


# --- the shape -------------------------------------------------------------------------------------


def test_an_empty_table_is_every_default() -> None:
    config = ok()
    assert config == ProjectConfig()
    assert (config.workers, config.steps, config.env, config.env_files) == (None, [], {}, None)
    assert (config.beat, config.flower, config.reload, config.redis_password) == (False,) * 4
    assert WorkerGroupConfig() == WorkerGroupConfig("worker", 1, None, None, [])
    assert StepConfig("m", "x").timeout == 300.0


def test_each_table_checks_exactly_its_fields() -> None:
    for cls, checks in (
        (ProjectConfig, p._PROJECT_CHECKS),
        (WorkerGroupConfig, p._GROUP_CHECKS),
        (StepConfig, p._STEP_CHECKS),
    ):
        assert [f.name for f in dataclasses.fields(cls)] == list(checks), cls


def test_configs_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ok().beat = True  # type: ignore[misc]


def test_a_full_config_is_read_as_written() -> None:
    config = ok(
        app_dir="src",
        python=".venv",
        api="main:app",
        celery="worker.celery",
        env_files=[".env", "more.env"],
        env={"A": "1"},
        ready_path="/health",
        broker="embedded",
        data_dir="var",
        workers=[{"name": "fast", "queues": ["high"], "pool": "threads", "concurrency": 8}, {"count": 2}],
        beat=True,
        flower=True,
        reload=True,
        redis_password=True,
        steps=[{"name": "migrate", "command": ["alembic", "upgrade", "head"], "timeout": 60}],
    )
    assert config.workers == [
        WorkerGroupConfig("fast", 1, "threads", 8, ["high"]),
        WorkerGroupConfig("worker", 2),
    ]
    assert config.steps == [StepConfig("migrate", ["alembic", "upgrade", "head"], 60.0)]
    assert isinstance(config.steps[0].timeout, float)
    assert (config.app_dir, config.python, config.env_files) == ("src", ".venv", [".env", "more.env"])
    assert (config.beat, config.flower, config.reload, config.redis_password) == (True,) * 4


def test_from_mapping_checks_as_a_file_does() -> None:
    assert ProjectConfig.from_mapping({"celery": "w", "workers": 2}).workers == 2
    with pytest.raises(ProjectError, match=r"^the configuration: apii: unknown key$"):
        ProjectConfig.from_mapping({"apii": "x"})
    # A dict from code may say None for a key that has no value (TOML cannot).
    assert ProjectConfig.from_mapping({"api": None, "workers": None}) == ProjectConfig()
    with pytest.raises(ProjectError, match="beat: must be true or false"):
        ProjectConfig.from_mapping({"beat": None})


def test_not_a_table_at_all() -> None:
    with pytest.raises(ProjectError, match=r"^p419.toml: must be a table$"):
        parse_config(3, "p419.toml")  # type: ignore[arg-type]


# --- unknown keys ----------------------------------------------------------------------------------


def test_unknown_keys_are_refused_everywhere() -> None:
    assert refused(apii="x") == "apii: unknown key"
    assert refused(workers={"name": "a", "queue": "x"}) == "workers.queue: unknown key"
    assert refused(workers=[{}, {"redis_password": True}]) == "workers[1].redis_password: unknown key"
    assert refused(steps=[{"name": "m", "command": "x", "retries": 2}]) == "steps[0].retries: unknown key"


# --- types, as TOML gives them ---------------------------------------------------------------------


@pytest.mark.parametrize("key", ["app_dir", "python", "api", "celery", "data_dir", "ready_path", "broker"])
@pytest.mark.parametrize("value", [3, True, ["x"], {"a": "b"}, 1.5])
def test_strings_must_be_strings(key: str, value: object) -> None:
    assert refused(**{key: value}) == f"{key}: must be a string"


@pytest.mark.parametrize("key", ["beat", "flower", "reload", "redis_password"])
def test_switches_are_true_or_false(key: str) -> None:
    assert getattr(ok(**{key: True}), key) is True and getattr(ok(**{key: False}), key) is False
    for value in (1, 0, "true", "yes"):
        assert refused(**{key: value}) == f"{key}: must be true or false"


def test_count_is_an_integer_1_to_64() -> None:
    for good in (1, 64):
        assert ok(workers={"count": good}).workers == WorkerGroupConfig(count=good)
    for bad in (0, 65, -1):
        assert refused(workers={"count": bad}) == "workers.count: must be 1..64"
    for bad in (True, 2.0, "2"):  # a bool is not an int here
        assert refused(workers={"count": bad}) == "workers.count: must be an integer"


def test_concurrency_is_an_integer_1_to_256() -> None:
    for good in (1, 256):
        assert ok(workers=[{"concurrency": good}]).workers == [WorkerGroupConfig(concurrency=good)]
    for bad in (0, 257):
        assert refused(workers=[{"concurrency": bad}]) == "workers[0].concurrency: must be 1..256"
    for bad in (False, 4.0, "4"):
        assert refused(workers=[{"concurrency": bad}]) == "workers[0].concurrency: must be an integer"


def test_a_steps_timeout_is_more_than_0_and_at_most_a_day() -> None:
    step = {"name": "m", "command": "x"}
    for good in (0.5, 1, 86400, 86400.0):
        timeout = ok(steps=[{**step, "timeout": good}]).steps[0].timeout
        assert timeout == good and isinstance(timeout, float)
    for bad in (0, 0.0, -1, 86400.5, float("nan"), float("inf")):
        assert refused(steps=[{**step, "timeout": bad}]) == (
            "steps[0].timeout: must be more than 0 and at most 86400 (a day)"
        )
    for bad in (True, "10", [1]):
        assert refused(steps=[{**step, "timeout": bad}]) == "steps[0].timeout: must be a number of seconds"


def test_pool_is_one_of_the_pools() -> None:
    for pool in POOLS:
        assert ok(workers={"pool": pool}).workers == WorkerGroupConfig(pool=pool)
    for bad in ("fork", "Solo", 1):
        assert refused(workers={"pool": bad}) == (
            "workers.pool: must be one of prefork, solo, threads, gevent, eventlet"
        )


def test_queues_are_a_list_or_a_comma_separated_string() -> None:
    assert ok(workers={"queues": ["a", "b"]}).workers == WorkerGroupConfig(queues=["a", "b"])
    assert ok(workers={"queues": " a, b ,,"}).workers == WorkerGroupConfig(queues=["a", "b"])
    assert ok(workers={"queues": ""}).workers == WorkerGroupConfig(queues=[])
    for bad in ([1], 3, {"a": "b"}):
        assert refused(workers={"queues": bad}) == (
            "workers.queues: must be a list of strings or a comma-separated string"
        )


def test_names_are_letters_digits_dashes_and_underscores() -> None:
    assert ok(workers={"name": "fast-lane_2"}).workers == WorkerGroupConfig(name="fast-lane_2")
    assert ok(steps=[{"name": "db_migrate-1", "command": "x"}]).steps[0].name == "db_migrate-1"
    for bad in ("a b", "", "a.b", "a/b"):
        assert refused(workers={"name": bad}) == "workers.name: use letters, digits, - and _"
        assert refused(steps=[{"name": bad, "command": "x"}]) == "steps[0].name: use letters, digits, - and _"
    assert refused(workers={"name": 3}) == "workers.name: must be a string"


def test_env_files_are_a_list_of_strings() -> None:
    assert ok(env_files=[]).env_files == [] and ok(env_files=["a.env"]).env_files == ["a.env"]
    for bad in (".env", [1], [".env", True]):
        assert refused(env_files=bad) == "env_files: must be a list of strings"


def test_env_is_a_table_of_strings() -> None:
    assert ok(env={"A": "1", "B": ""}).env == {"A": "1", "B": ""}
    assert refused(env={"A": 1, "B": "x", "C": True}) == "env.A: must be a string; env.C: must be a string"
    assert refused(env="A=1") == 'env: must be a table of strings (NAME = "value")'


def test_a_command_is_a_string_or_a_list_of_strings() -> None:
    for good in ("uvicorn main:app", ["uvicorn", "main:app"]):
        assert ok(api_command=good).api_command == good
        assert ok(steps=[{"name": "m", "command": good}]).steps[0].command == good
    for bad in (3, ["a", 1], {"a": "b"}, True):
        assert refused(api_command=bad) == "api_command: must be a string or a list of strings"
        assert refused(steps=[{"name": "m", "command": bad}]) == (
            "steps[0].command: must be a string or a list of strings"
        )


def test_broker_goes_through_check_broker() -> None:
    assert ok(broker=" Redis ").broker == "redis"  # check_broker's value is kept
    assert ok(broker="redis://cache:6379/1").broker == "redis://cache:6379/1"
    for bad in ("rabbit", "amqp://x", "redis://h:99999/0"):
        with pytest.raises(ValueError) as said:  # its words are settings.py's
            check_broker(bad)
        assert refused(broker=bad) == f"broker: {said.value}"
    assert refused(broker="rabbit") == "broker: must be auto, redis, embedded or a redis:// URL"


def test_ready_path_starts_with_a_slash() -> None:
    assert ok(ready_path="/health?x=1").ready_path == "/health?x=1"
    assert refused(ready_path="health") == "ready_path: must start with /, e.g. /health"


# --- workers and steps: the forms they take ---------------------------------------------------------


def test_workers_is_a_number_a_table_or_tables() -> None:
    assert ok(workers=3).workers == 3
    assert ok(workers={"name": "a"}).workers == WorkerGroupConfig(name="a")
    assert ok(workers=[]).workers == []
    assert refused(workers=0) == "workers: must be 1..64"
    assert refused(workers=65) == "workers: must be 1..64"
    for bad in ("three", True, 2.5):
        assert refused(workers=bad) == f"workers: {FORMS['workers']}"
    assert FORMS["workers"] == "must be a number of processes (workers = 2) or [[workers]] tables"
    assert refused(workers=[{}, 2]) == "workers[1]: must be a [[workers]] table"


def test_the_forms_of_workers_resolve_to_groups(tmp_path: Path) -> None:
    def groups(workers: object) -> list[tuple[str, int]]:
        config = ok(celery="w", workers=workers)
        project = resolve_project(
            tmp_path, {}, Flags(), ConfigSource(tmp_path / "p419.toml", "p419.toml", config)
        )
        return [(g.name, g.count) for g in project.workers]

    assert groups(3) == [("worker", 3)]
    assert groups({"name": "a", "count": 2}) == [("a", 2)]
    assert groups([{"name": "a"}, {"name": "b", "queues": "x,y"}]) == [("a", 1), ("b", 1)]
    assert groups([]) == [("worker", 1)]
    with pytest.raises(ProjectError, match="two groups are named 'a'"):
        groups([{"name": "a"}, {"name": "a"}])


def test_steps_are_tables_with_a_name_and_a_command() -> None:
    assert refused(steps=[{}]) == "steps[0].name: required; steps[0].command: required"
    assert refused(steps=[{"name": "m"}]) == "steps[0].command: required"
    assert (
        refused(steps={"name": "m", "command": "x"})
        == "steps: must be [[steps]] tables (name = ..., command = ...)"
    )
    assert refused(steps=["alembic upgrade head"]) == "steps[0]: must be a [[steps]] table"


# --- the message: every problem, its key, its line -------------------------------------------------


def test_every_problem_is_said_in_one_message_in_order() -> None:
    assert refused(beat=1, apii="x", workers=[{"count": 0}, {"pool": "x", "bogus": 1}]) == (
        "beat: must be true or false; apii: unknown key; workers[0].count: must be 1..64; "
        "workers[1].pool: must be one of prefork, solo, threads, gevent, eventlet; workers[1].bogus: unknown key"
    )


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder / name


def config_error(folder: Path) -> str:
    with pytest.raises(ProjectError) as caught:
        find_config(folder)
    return str(caught.value)


def test_a_p419_toml_error_names_the_key_and_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p419.toml",
        'celery = "w.celery"\n\n[[workers]]\nname = "a"\n\n[[workers]]\nname = "b"\nredis_password = true\n',
    )
    assert config_error(tmp_path) == f"{path}: workers[1].redis_password: unknown key (line 8)"
    write(tmp_path, "p419.toml", 'celery = "w.celery"\nworkers = "three"\n')
    assert config_error(tmp_path) == f"{path}: workers: {FORMS['workers']} (line 2)"


def test_many_problems_in_a_p419_toml_each_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p419.toml",
        "\n".join(
            [
                'celery = "w.celery"',  # 1
                "beat = 1",  # 2
                'ready_path = "health"',  # 3
                "",  # 4
                "[env]",  # 5
                'A = "1"',  # 6
                "B = 2",  # 7
                "",  # 8
                "[[steps]]",  # 9
                'name = "migrate"',  # 10
                "",  # 11
                "[[steps]]",  # 12
                'name = "seed"',  # 13
                'command = "python seed.py"',  # 14
                "timeout = 0",  # 15
            ]
        )
        + "\n",
    )
    assert config_error(tmp_path) == (
        f"{path}: beat: must be true or false (line 2); ready_path: must start with /, e.g. /health (line 3); "
        "env.B: must be a string (line 7); "
        # a required key that is missing: the line of its table, not the next table's key of that name
        "steps[0].command: required (line 9); "
        "steps[1].timeout: must be more than 0 and at most 86400 (a day) (line 15)"
    )


def test_a_single_workers_table_points_at_its_own_key(tmp_path: Path) -> None:
    path = write(tmp_path, "p419.toml", 'celery = "w"\n\n[workers]\nname = "a"\ncount = 100\n')
    assert config_error(tmp_path) == f"{path}: workers.count: must be 1..64 (line 5)"


def test_a_pyproject_error_names_the_table_the_key_and_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "pyproject.toml",
        "\n".join(
            [
                "[project]",  # 1
                'name = "demo"',  # 2
                "beat = 'x'",  # 3: [project]'s, not p419's
                "",  # 4
                "[tool.p419]",  # 5
                'celery = "w.celery"',  # 6
                "beat = 3",  # 7
                "",  # 8
                "[tool.p419.env]",  # 9
                "PORT = 8000",  # 10
                "",  # 11
                "[[tool.p419.workers]]",  # 12
                'name = "a"',  # 13
                "",  # 14
                "[[tool.p419.workers]]",  # 15
                "concurrency = 0",  # 16
                "queue = 'x'",  # 17
            ]
        )
        + "\n",
    )
    assert config_error(tmp_path) == (
        f"{path} [tool.p419]: beat: must be true or false (line 7); env.PORT: must be a string (line 10); "
        "workers[1].concurrency: must be 1..256 (line 16); workers[1].queue: unknown key (line 17)"
    )


def test_a_good_pyproject_and_p419_toml_are_read(tmp_path: Path) -> None:
    write(
        tmp_path / "a", "pyproject.toml", '[project]\nname = "x"\n\n[tool.p419]\ncelery = "w"\nworkers = 2\n'
    )
    source = find_config(tmp_path / "a")
    assert (
        source is not None
        and source.table == "[tool.p419]"
        and source.config == ProjectConfig(celery="w", workers=2)
    )
    write(tmp_path / "b", "p419.toml", 'celery = "w"\n[[steps]]\nname = "m"\ncommand = ["a", "b"]\n')
    source = find_config(tmp_path / "b")
    assert source is not None and source.table == "p419.toml"
    assert source.config.steps == [StepConfig("m", ["a", "b"])]


def test_key_line() -> None:
    text = 'api = "x"\n\n[env]\nA = 1\n\n[[workers]]\ncount = 2\n\n[[workers]]\nname = "b"\n'
    assert key_line(text, ("api",)) == 1
    assert key_line(text, ("env",)) == 3
    assert key_line(text, ("env", "A")) == 4
    assert key_line(text, ("workers",)) == 6
    assert key_line(text, ("workers", 0, "count")) == 7
    assert key_line(text, ("workers", 1, "name")) == 10
    assert key_line(text, ("workers", 1, "count")) == 9  # not written there: its table's header
    assert key_line(text, ("celery",)) is None
    assert key_line("env = { A = 1 }\n", ("env", "A")) == 1


# --- start-up ----------------------------------------------------------------------------------------


def test_importing_the_project_module_does_not_load_pydantic() -> None:
    """`p419 up` imports this module before its first child: pydantic costs ~100 ms there (benchmarks row 8)."""
    code = "import python419.project, sys; assert 'pydantic' not in sys.modules, sorted(m for m in sys.modules if 'pydantic' in m)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
