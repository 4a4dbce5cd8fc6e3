"""Which Python runs the project's children: each rung of the rule as a pure case (fake file system and
subprocesses), the Windows forms, the one-line errors; then real venvs, real interpreters and real slow tools."""

from __future__ import annotations

import glob
import importlib.metadata
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import psutil
import pytest

from python419.interpreter import (
    DISTRIBUTIONS,
    KNOWN_PROBLEMS,
    OWN_REASON,
    Edges,
    Interpreter,
    InterpreterError,
    RunResult,
    Versions,
    describe,
    find_interpreter,
    known_problems,
    missing_for,
    query_versions,
    require,
    venv_python,
)
from python419.platforms import Platform, detect_platform

OWN_EXE = "/opt/p419/bin/python"
OWN_PREFIX = "/opt/p419"

# --- fakes ----------------------------------------------------------------------------------------

Answer = RunResult | Callable[[Sequence[str]], RunResult]


class FakeWorld:
    """Files, commands on PATH and subprocess answers, as find_interpreter's edges see them."""

    def __init__(
        self,
        files: Iterable[str] = (),
        texts: Mapping[str, str] | None = None,
        commands: Mapping[str, str] | None = None,
        answers: Mapping[str, Answer] | None = None,
    ) -> None:
        self.files = set(files)
        self.texts = dict(texts or {})
        self.commands = dict(commands or {})
        self.answers = dict(answers or {})
        self.calls: list[tuple[list[str], str | None, dict[str, str]]] = []

    def is_file(self, path: str) -> bool:
        return path in self.files or path in self.texts

    def is_dir(self, path: str) -> bool:
        return any(f.startswith((path + "/", path + "\\")) for f in (*self.files, *self.texts))

    def read_text(self, path: str) -> str | None:
        return self.texts.get(path)

    def which(self, command: str, path_env: str | None) -> str | None:
        return self.commands.get(command)

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> RunResult:
        self.calls.append((list(argv), cwd, dict(env or {})))
        answer = self.answers.get(argv[0])
        if answer is None:
            return RunResult(None, "", f"[Errno 2] No such file or directory: {argv[0]!r}")
        return answer(argv) if callable(answer) else answer

    def edges(self) -> Edges:
        return Edges(
            is_file=self.is_file,
            is_dir=self.is_dir,
            read_text=self.read_text,
            which=self.which,
            realpath=lambda p: p,
            run=self.run,
        )


def venv(env_dir: str, platform: Platform = "linux") -> set[str]:
    sep = "\\" if platform == "windows" else "/"
    return {f"{env_dir}{sep}pyvenv.cfg", venv_python(platform, env_dir)}


def ok(stdout: str) -> RunResult:
    return RunResult(0, stdout, "")


def find(world: FakeWorld, **kw: object) -> Interpreter:
    args: dict[str, object] = {
        "platform": "linux",
        "environ": {"PATH": "/usr/bin"},
        "root": "/p",
        "own_executable": OWN_EXE,
        "own_prefix": OWN_PREFIX,
        "edges": world.edges(),
    }
    args.update(kw)
    return find_interpreter(**args)  # type: ignore[arg-type]


# --- rung 1: --python, then python = "..." ---------------------------------------------------------


def test_flag_beats_config_virtualenv_and_folders() -> None:
    world = FakeWorld({"/x/bin/python", "/cfg/python", *venv("/ve"), *venv("/p/.venv")})
    got = find(
        world,
        flag="/x/bin/python",
        configured="/cfg/python",
        config_file="/p/p419.toml",
        environ={"VIRTUAL_ENV": "/ve"},
    )
    assert got == Interpreter("/x/bin/python", "--python", False)


def test_flag_relative_to_cwd_bare_name_on_path_and_venv_folder() -> None:
    world = FakeWorld(
        {"/work/envs/a/bin/python", *venv("/p/.venv")}, commands={"python3.9": "/usr/bin/python3.9"}
    )
    assert find(world, flag="envs/a/bin/python", cwd="/work").path == "/work/envs/a/bin/python"
    assert find(world, flag="python3.9").path == "/usr/bin/python3.9"
    assert find(world, flag=".venv") == Interpreter("/p/.venv/bin/python", "--python", False)


def test_flag_missing_is_one_line_naming_it_and_the_fix() -> None:
    with pytest.raises(InterpreterError) as err:
        find(FakeWorld(), flag="/nope/python")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("--python /nope/python: /nope/python does not exist")
    assert "e.g. --python .venv" in msg


def test_config_path_is_relative_to_the_config_files_folder() -> None:
    world = FakeWorld({"/p/envs/a/bin/python", *venv("/p/conf/.venv")})
    got = find(world, configured="../envs/a/bin/python", config_file="/p/conf/p419.toml")
    assert got == Interpreter("/p/envs/a/bin/python", "python in p419.toml", False)
    in_pyproject = find(world, configured="envs/a/bin/python", config_file="/p/pyproject.toml")
    assert in_pyproject.reason == "python in pyproject.toml [tool.p419]"


def test_config_bare_command_name_is_looked_up_on_path() -> None:
    world = FakeWorld(commands={"python3.9": "/root/.pyenv/shims/python3.9"})
    got = find(world, configured="python3.9", config_file="/p/p419.toml")
    assert got == Interpreter("/root/.pyenv/shims/python3.9", "python in p419.toml", False)


def test_config_home_is_taken_from_the_environ_given() -> None:
    world = FakeWorld({"/home/u/venvs/x/bin/python"})
    got = find(
        world, configured="~/venvs/x/bin/python", config_file="/p/p419.toml", environ={"HOME": "/home/u"}
    )
    assert got.path == "/home/u/venvs/x/bin/python"


def test_config_missing_path_names_file_resolved_path_base_and_fix() -> None:
    with pytest.raises(InterpreterError) as err:
        find(FakeWorld(), configured="../nope/bin/python", config_file="/p/p419.toml")
    assert str(err.value) == (
        'python = "../nope/bin/python" in /p/p419.toml: /nope/bin/python does not exist '
        "(relative paths start at /p): give the path of the project's python (or its virtualenv folder), "
        "or remove the line to let p419 find the project's environment"
    )


def test_config_bare_name_not_on_path() -> None:
    with pytest.raises(
        InterpreterError, match=r"in /p/p419.toml: no python3\.9 on PATH and no /p/python3\.9"
    ):
        find(FakeWorld(), configured="python3.9", config_file="/p/p419.toml")


def test_config_folder_without_interpreter() -> None:
    with pytest.raises(InterpreterError, match=r"/p/stuff is a folder without bin/python"):
        find(FakeWorld({"/p/stuff/readme.txt"}), configured="stuff", config_file="/p/p419.toml")


# --- rung 2: VIRTUAL_ENV ------------------------------------------------------------------------------


def test_activated_virtualenv_beats_project_folders() -> None:
    world = FakeWorld({*venv("/ve"), *venv("/p/.venv")})
    got = find(world, environ={"VIRTUAL_ENV": "/ve"})
    assert got == Interpreter("/ve/bin/python", "VIRTUAL_ENV", False)


@pytest.mark.parametrize("value", [OWN_PREFIX, OWN_PREFIX + "/", "/opt/./p419"])
def test_virtualenv_that_is_p419s_own_is_skipped(value: str) -> None:
    notes: list[str] = []
    world = FakeWorld({*venv(OWN_PREFIX), *venv("/p/.venv")})
    got = find(world, environ={"VIRTUAL_ENV": value}, on_skip=notes.append)
    assert got == Interpreter("/p/.venv/bin/python", ".venv in /p", False)
    assert any("p419's own environment" in note for note in notes)


def test_virtualenv_without_interpreter_is_an_error() -> None:
    with pytest.raises(InterpreterError, match=r"VIRTUAL_ENV is /gone, but /gone/bin/python does not exist"):
        find(FakeWorld(), environ={"VIRTUAL_ENV": "/gone"})


# --- rung 3: .venv / venv / env at the root, then in app_dir ---------------------------------------


@pytest.mark.parametrize("name", [".venv", "venv", "env"])
def test_each_venv_folder_name_is_found(name: str) -> None:
    got = find(FakeWorld(venv(f"/p/{name}")))
    assert got == Interpreter(f"/p/{name}/bin/python", f"{name} in /p", False)


def test_dot_venv_wins_over_venv_and_root_over_app_dir() -> None:
    world = FakeWorld({*venv("/p/venv"), *venv("/p/.venv"), *venv("/p/app/.venv")})
    assert find(world, app_dir="/p/app").path == "/p/.venv/bin/python"
    only_app = FakeWorld(venv("/p/app/env"))
    assert find(only_app, app_dir="/p/app") == Interpreter("/p/app/env/bin/python", "env in /p/app", False)


def test_folder_without_pyvenv_cfg_is_not_a_venv() -> None:
    got = find(FakeWorld({"/p/env/bin/python", "/p/env/settings.ini"}))
    assert got == Interpreter(OWN_EXE, OWN_REASON, True)


def test_venv_whose_interpreter_is_gone_is_an_error() -> None:
    with pytest.raises(
        InterpreterError, match=r"/p/.venv is a virtualenv without bin/python .*--clear /p/.venv"
    ):
        find(FakeWorld({"/p/.venv/pyvenv.cfg"}))


def test_found_venv_that_is_p419s_own_says_so() -> None:
    got = find(FakeWorld(venv("/p/.venv")), own_executable="/p/.venv/bin/python", own_prefix="/p/.venv")
    assert got == Interpreter("/p/.venv/bin/python", ".venv in /p", True)


# --- Windows forms --------------------------------------------------------------------------------


def test_windows_venv_is_scripts_python_exe() -> None:
    root = "C:\\Users\\me\\proj"
    world = FakeWorld(venv(root + "\\.venv", "windows"))
    got = find(
        world, platform="windows", root=root, own_executable="C:\\p419\\python.exe", own_prefix="C:\\p419"
    )
    assert got == Interpreter("C:\\Users\\me\\proj\\.venv\\Scripts\\python.exe", f".venv in {root}", False)


def test_windows_own_virtualenv_compares_case_insensitively() -> None:
    root = "C:\\proj"
    world = FakeWorld({*venv("C:\\Tools\\P419", "windows"), *venv(root + "\\venv", "windows")})
    got = find(
        world,
        platform="windows",
        root=root,
        environ={"VIRTUAL_ENV": "c:\\tools\\p419\\"},
        own_executable="C:\\Tools\\P419\\Scripts\\python.exe",
        own_prefix="C:\\Tools\\P419",
    )
    assert got.path == "C:\\proj\\venv\\Scripts\\python.exe"


def test_windows_configured_paths() -> None:
    world = FakeWorld({"C:\\Py39\\python.exe", "C:\\envs\\a\\Scripts\\python.exe"})
    kw: dict[str, object] = {"platform": "windows", "root": "C:\\proj"}
    assert find(world, flag="C:\\Py39\\python", **kw).path == "C:\\Py39\\python.exe"
    relative = find(
        world, configured="..\\envs\\a\\Scripts\\python.exe", config_file="C:\\proj\\p419.toml", **kw
    )
    assert relative == Interpreter("C:\\envs\\a\\Scripts\\python.exe", "python in p419.toml", False)
    with pytest.raises(InterpreterError, match=r"C:\\nope\\python.exe does not exist"):
        find(world, flag="C:\\nope\\python.exe", **kw)


# --- rung 4: poetry / pipenv / uv / pdm -------------------------------------------------------------

POETRY_ENV = "/cache/pypoetry/virtualenvs/p-abc-py3.9"


def test_poetry_lock_asks_poetry_in_the_project_without_virtual_env() -> None:
    world = FakeWorld(
        {"/p/poetry.lock", *venv(POETRY_ENV), *venv(OWN_PREFIX)},
        commands={"poetry": "/usr/bin/poetry"},
        answers={"/usr/bin/poetry": ok(f"{POETRY_ENV}\n")},
    )
    got = find(world, environ={"PATH": "/usr/bin", "VIRTUAL_ENV": OWN_PREFIX})
    assert got == Interpreter(f"{POETRY_ENV}/bin/python", "poetry env", False)
    [(argv, cwd, env)] = world.calls
    assert (argv, cwd) == (["/usr/bin/poetry", "env", "info", "-p"], "/p")
    assert "VIRTUAL_ENV" not in env and env["PATH"] == "/usr/bin"


def test_tool_poetry_table_in_pyproject_is_enough() -> None:
    world = FakeWorld(
        venv(POETRY_ENV),
        texts={"/p/pyproject.toml": '[project]\nname = "x"\n\n[tool.poetry.dependencies]\ncelery = "^5"\n'},
        commands={"poetry": "/usr/bin/poetry"},
        answers={"/usr/bin/poetry": ok(POETRY_ENV)},
    )
    assert find(world).reason == "poetry env"


def test_no_tool_files_means_no_tool_is_run() -> None:
    world = FakeWorld(
        texts={"/p/pyproject.toml": '[project]\nname = "x"\n[tool.p419]\napi = "m:app"\n'},
        commands={"poetry": "/usr/bin/poetry", "pipenv": "/usr/bin/pipenv", "pdm": "/usr/bin/pdm"},
    )
    assert find(world) == Interpreter(OWN_EXE, OWN_REASON, True)
    assert world.calls == []


def test_failing_slow_or_absent_tools_are_skipped_in_order() -> None:
    notes: list[str] = []
    world = FakeWorld(
        {"/p/poetry.lock", "/p/Pipfile", "/p/pdm.lock", "/p/app/poetry.lock", "/p/.pdm/bin/python"},
        commands={"poetry": "/usr/bin/poetry", "pdm": "/usr/bin/pdm"},
        answers={
            "/usr/bin/poetry": lambda argv: RunResult(None, "", "", timed_out=True),
            "/usr/bin/pdm": ok("/p/.pdm/bin/python\n"),
        },
    )
    got = find(world, app_dir="/p/app", on_skip=notes.append, tool_timeout=1.5)
    assert got == Interpreter("/p/.pdm/bin/python", "pdm info --python", False)
    assert notes == [
        "poetry env info -p did not answer within 1.5 s: skipped",
        "pipenv: its files are in /p but the command is not on PATH: skipped",
    ]


def test_tool_error_and_useless_answers_fall_through_to_own() -> None:
    notes: list[str] = []
    world = FakeWorld(
        {"/p/Pipfile", "/p/pdm.lock"},
        commands={"pipenv": "/usr/bin/pipenv", "pdm": "/usr/bin/pdm"},
        answers={
            "/usr/bin/pipenv": RunResult(1, "", "No virtualenv has been created for this project yet!\n"),
            "/usr/bin/pdm": ok("/nowhere/python"),
        },
    )
    assert find(world, on_skip=notes.append).own
    assert notes == [
        "pipenv --venv gave no environment (No virtualenv has been created for this project yet!): skipped",
        "pdm: /nowhere/python does not exist: skipped",
    ]


def test_pipenv_answers() -> None:
    world = FakeWorld(
        {"/p/Pipfile", *venv("/home/u/.local/share/virtualenvs/p-x1")},
        commands={"pipenv": "/usr/bin/pipenv"},
        answers={"/usr/bin/pipenv": ok("/home/u/.local/share/virtualenvs/p-x1\n")},
    )
    assert find(world) == Interpreter(
        "/home/u/.local/share/virtualenvs/p-x1/bin/python", "pipenv --venv", False
    )


@pytest.mark.parametrize(
    "setting,expected", [("envs/uv", "/p/envs/uv/bin/python"), ("/srv/uvenv", "/srv/uvenv/bin/python")]
)
def test_uv_honours_uv_project_environment_without_running_uv(setting: str, expected: str) -> None:
    world = FakeWorld(
        {"/p/uv.lock", *venv("/p/envs/uv"), *venv("/srv/uvenv")}, commands={"uv": "/usr/bin/uv"}
    )
    got = find(world, environ={"UV_PROJECT_ENVIRONMENT": setting})
    assert got == Interpreter(expected, "UV_PROJECT_ENVIRONMENT (uv.lock)", False)
    assert world.calls == []


def test_uv_lock_without_an_environment_falls_through() -> None:
    assert find(FakeWorld({"/p/uv.lock"})).own


# --- rung 5 ---------------------------------------------------------------------------------------


def test_nothing_found_is_p419s_own_interpreter() -> None:
    assert find(FakeWorld(), app_dir="/p/app") == Interpreter(OWN_EXE, OWN_REASON, True)


# --- query_versions, pure --------------------------------------------------------------------------


def answering(stdout: str, returncode: int = 0, stderr: str = "") -> Callable[..., RunResult]:
    def run(argv: Sequence[str], *, timeout: float, cwd: str | None = None, env: object = None) -> RunResult:
        assert argv[1] == "-c" and timeout == 10.0
        return RunResult(returncode, stdout, stderr)

    return run


def test_query_reads_the_answer_after_any_start_up_noise() -> None:
    payload = '{"python": [3, 9, 18], "packages": {"celery": "5.2.7", "kombu": "5.2.4", "redis": null}}'
    run = answering(f"sitecustomize says hi\n--p419-versions--{payload}\n")
    assert query_versions("/p/.venv/bin/python", run) == Versions((3, 9, 18), celery="5.2.7", kombu="5.2.4")


@pytest.mark.parametrize(
    "result,message",
    [
        (
            RunResult(1, "", "Traceback (most recent call last):\n  ...\nImportError: boom\n"),
            "cannot run: ImportError: boom",
        ),
        (
            RunResult(None, "", "[Errno 13] Permission denied: '/x'"),
            "cannot run: [Errno 13] Permission denied",
        ),
        (RunResult(None, "", "", timed_out=True), "did not answer within 10 s"),
        (RunResult(0, "hello\n", ""), "gave no version answer (stdout: 'hello')"),
        (
            RunResult(0, '--p419-versions--{"python": [3, 7, 16], "error": "x"}', ""),
            "is Python 3.7.16, which",
        ),
    ],
)
def test_query_failures_are_one_readable_line(result: RunResult, message: str) -> None:
    with pytest.raises(InterpreterError) as err:
        query_versions("/x", lambda argv, **kw: result)
    assert str(err.value).startswith("`/x` ") and message in str(err.value) and "\n" not in str(err.value)


# --- missing_for / require / describe ----------------------------------------------------------------

V39 = Versions((3, 9, 18), celery="5.2.7", kombu="5.2.4", uvicorn="0.21.1", redis="4.5.4")
VENV_INTERP = Interpreter("/p/.venv/bin/python", ".venv in /p", False)


def test_missing_for_lists_absent_needs_in_a_stable_order() -> None:
    bare = Versions((3, 12, 1))
    assert missing_for(bare, {"uvicorn", "celery", "redis"}) == ["celery", "uvicorn", "redis"]
    assert missing_for(V39, {"celery", "kombu", "uvicorn", "redis"}) == []
    assert missing_for(V39, {"fastapi", "celery"}) == ["fastapi"]
    with pytest.raises(ValueError, match="unknown distribution"):
        missing_for(V39, {"django"})


def test_require_names_interpreter_package_role_and_fix() -> None:
    require(VENV_INTERP, V39, {"celery", "kombu", "redis"})  # all there: no error
    no_celery = Versions((3, 9, 18), kombu="5.2.4", redis="4.5.4")
    with pytest.raises(InterpreterError) as err:
        require(VENV_INTERP, no_celery, {"celery", "kombu", "redis"})
    assert str(err.value) == (
        "`/p/.venv/bin/python` (from .venv in /p) has no celery, which the workers need: "
        "/p/.venv/bin/python -m pip install celery, or point p419 at the project's environment with "
        '--python PATH or python = "..." in p419.toml'
    )


def test_require_several_missing_and_own_interpreter() -> None:
    with pytest.raises(InterpreterError) as err:
        require(VENV_INTERP, Versions((3, 9, 18), kombu="5.2.4"), {"celery", "uvicorn", "kombu"})
    assert "has no celery and uvicorn, which the workers and the API need: " in str(err.value)
    assert "/p/.venv/bin/python -m pip install celery uvicorn, or point" in str(err.value)
    own = Interpreter("/home/u/.local/pipx/venvs/p419/bin/python", OWN_REASON, True)
    with pytest.raises(InterpreterError) as err:
        require(own, Versions((3, 12, 1)), {"fastapi"})
    msg = str(err.value)
    assert "has no fastapi, which the API needs: no project environment was found" in msg
    assert "pip install" not in msg and "\n" not in msg


def test_describe_is_the_start_up_line() -> None:
    assert describe(VENV_INTERP, V39) == (
        "python: /p/.venv/bin/python 3.9.18 (.venv in /p): celery 5.2.7, kombu 5.2.4, uvicorn 0.21.1, redis 4.5.4"
    )
    assert describe(VENV_INTERP, Versions((3, 12, 1))).endswith(
        "3.12.1 (.venv in /p): none of celery, kombu, uvicorn, redis, fastapi, flower"
    )


# --- known problems -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "versions,sources",
    [
        (Versions((3, 11, 7), celery="5.4.0", kombu="5.4.2", redis="5.2.1", uvicorn="0.30.0"), []),
        (Versions((3, 13, 0), celery="5.5.3", kombu="5.5.4", redis="5.2.1"), []),
        (
            Versions((3, 12, 1), celery="5.2.7", kombu="5.2.4"),
            ["kombu/issues/1804", "celery/discussions/8631"],
        ),
        (Versions((3, 12, 1), celery="5.3.6", kombu="5.3.4"), []),
        (Versions((3, 13, 0), celery="5.4.0", kombu="5.4.2"), ["whatsnew-5.5"]),
        (Versions((3, 10, 13), kombu="5.2.0", redis="3.3.11"), ["kombu/issues/1419", "celery/issues/8091"]),
        (Versions((3, 10, 13), kombu="5.4.0", redis="4.0.1"), ["kombu/pull/1445"]),
        (Versions((3, 10, 13), kombu="5.4.0", redis="4.5.5"), ["celery/pull/8317"]),
        (Versions((3, 11, 7), kombu="5.6.1", redis="4.6.0"), ["kombu/issues/2419"]),
        (Versions((3, 11, 7), kombu="5.6.2", redis="4.6.0"), []),
        (Versions((3, 11, 7), kombu="5.3.7", redis="5.0.8"), ["celery/issues/8091"]),
        (Versions((3, 11, 7), kombu="5.4.0rc1", redis="5.0.8"), []),  # the fix was in 5.4.0rc1
        (
            Versions((3, 12, 1), celery="5.2.7"),
            ["celery/discussions/8631"],
        ),  # kombu absent: its rows can't apply
    ],
)
def test_known_problems(versions: Versions, sources: list[str]) -> None:
    lines = known_problems(versions)
    assert len(lines) == len(sources), lines
    for line, source in zip(lines, sources, strict=True):
        assert source in line


def test_known_problem_line_says_what_is_installed_why_and_where_from() -> None:
    line, reconnect = known_problems(Versions((3, 12, 1), celery="5.3.6", kombu="5.3.2", redis="5.0.1"))
    assert reconnect.startswith("kombu 5.3.2, redis 5.0.1: with kombu before 5.4.0 a worker stops consuming")
    assert line.startswith("Python 3.12.1, kombu 5.3.2: kombu before 5.3.3 fails on Python 3.12+")
    assert line.endswith("(https://github.com/celery/kombu/issues/1804)")


def test_every_known_problem_has_a_source_and_valid_names() -> None:
    for problem in KNOWN_PROBLEMS:
        assert problem.source.startswith("https://")
        assert {name for name, _, _ in problem.conditions} <= {"python", *DISTRIBUTIONS}


# --- real interpreters, venvs and tools --------------------------------------------------------------

PLATFORM = detect_platform()
posix_only = pytest.mark.skipif(os.name != "posix", reason="the fake tools are sh scripts")


def _pyenv(minor: int) -> str | None:
    found = sorted(glob.glob(f"/root/.pyenv/versions/3.{minor}.*/bin/python3.{minor}"))
    return found[-1] if found else None


# 3.9 when pyenv has it; otherwise the test Python, and the assertions follow whichever it is.
BASE_PYTHON = _pyenv(9) or sys.executable


def _version_of(python: str) -> tuple[int, int]:
    out = subprocess.run(
        [python, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    return int(out[0]), int(out[1])


def clean_environ(bin_dir: Path | None = None, **extra: str) -> dict[str, str]:
    """This process's environment minus anything that would choose an interpreter for us; bin_dir (fake
    tools) goes first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    if bin_dir is not None:
        env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", os.defpath)])
    return {**env, **extra}


@pytest.fixture(scope="module")
def real_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder with a real (pip-less) .venv made by BASE_PYTHON -m venv."""
    root = tmp_path_factory.mktemp("project")
    subprocess.run([BASE_PYTHON, "-m", "venv", "--without-pip", str(root / ".venv")], check=True, timeout=60)
    return root


def real_find(root: Path, **kw: object) -> Interpreter:
    args: dict[str, object] = {
        "platform": PLATFORM,
        "environ": clean_environ(),
        "root": root,
        "own_executable": sys.executable,
        "own_prefix": sys.prefix,
    }
    args.update(kw)
    return find_interpreter(**args)  # type: ignore[arg-type]


def test_real_venv_is_found_as_dot_venv(real_project: Path) -> None:
    got = real_find(real_project)
    assert got == Interpreter(
        venv_python(PLATFORM, str(real_project / ".venv")), f".venv in {real_project}", False
    )
    # An activated VIRTUAL_ENV that is p419's own (the test venv) does not hide it.
    assert real_find(real_project, environ=clean_environ(VIRTUAL_ENV=sys.prefix)) == got


def test_real_query_of_a_bare_venv_has_its_python_and_no_stack(real_project: Path) -> None:
    python = venv_python(PLATFORM, str(real_project / ".venv"))
    versions = query_versions(python)
    assert versions.python[:2] == _version_of(BASE_PYTHON)
    assert all(versions.get(name) is None for name in DISTRIBUTIONS)
    with pytest.raises(
        InterpreterError, match=r"has no celery and uvicorn, which the workers and the API need"
    ):
        require(real_find(real_project), versions, {"celery", "uvicorn"})


def test_real_query_of_the_test_python_matches_its_metadata() -> None:
    versions = query_versions(sys.executable)
    assert versions.python == tuple(sys.version_info[:3])
    assert versions.celery is not None and versions.kombu is not None and versions.redis is not None
    for name in DISTRIBUTIONS:
        try:
            expected: str | None = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            expected = None
        assert versions.get(name) == expected


# Every pyenv Python 3.8-3.13 there is, and always the test Python: the query must run on all of them.
QUERY_PYTHONS = [p for p in (_pyenv(m) for m in range(8, 14)) if p] + [sys.executable]


@pytest.mark.parametrize("python", QUERY_PYTHONS)
def test_real_query_runs_on_every_supported_python(python: str) -> None:
    started = time.monotonic()
    versions = query_versions(python)
    assert versions.python[:2] == _version_of(python)
    assert time.monotonic() - started < 5


@posix_only
def test_real_query_of_a_broken_interpreter_names_it_and_its_last_stderr_line(tmp_path: Path) -> None:
    broken = write_script(tmp_path / "python", "echo 'Fatal Python error: init_fs_encoding' >&2\nexit 1")
    with pytest.raises(InterpreterError) as err:
        query_versions(str(broken))
    assert str(err.value) == f"`{broken}` cannot run: Fatal Python error: init_fs_encoding"
    with pytest.raises(InterpreterError, match=r"cannot run: .*No such file"):
        query_versions(str(tmp_path / "absent" / "python"))


def write_script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@posix_only
def test_real_slow_tool_is_skipped_and_killed_with_what_it_started(tmp_path: Path) -> None:
    bin_dir, project = tmp_path / "bin", tmp_path / "project"
    pid_file = tmp_path / "sleep.pid"
    write_script(bin_dir / "poetry", f"sleep 30 &\necho $! > {pid_file}\nwait")
    project.mkdir()
    (project / "poetry.lock").write_text("")
    notes: list[str] = []
    started = time.monotonic()
    got = real_find(project, environ=clean_environ(bin_dir), tool_timeout=0.5, on_skip=notes.append)
    assert time.monotonic() - started < 3
    assert got == Interpreter(sys.executable, OWN_REASON, True)
    assert notes == ["poetry env info -p did not answer within 0.5 s: skipped"]
    sleeper = int(pid_file.read_text())
    deadline = time.monotonic() + 3
    while alive(sleeper):
        assert time.monotonic() < deadline, "the tool's child outlived the timeout"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@posix_only
def test_real_failing_tool_is_skipped_and_answering_tool_is_used(tmp_path: Path, real_project: Path) -> None:
    bin_dir, project = tmp_path / "bin", tmp_path / "project"
    write_script(bin_dir / "pipenv", "echo 'No virtualenv has been created for this project' >&2\nexit 1")
    python = venv_python(PLATFORM, str(real_project / ".venv"))
    write_script(bin_dir / "pdm", f"echo '{python}'")
    project.mkdir()
    (project / "Pipfile").write_text("")
    (project / "pdm.lock").write_text("")
    notes: list[str] = []
    got = real_find(project, environ=clean_environ(bin_dir), on_skip=notes.append)
    assert got == Interpreter(python, "pdm info --python", False)
    assert notes == [
        "pipenv --venv gave no environment (No virtualenv has been created for this project): skipped"
    ]
