"""p419 is a tool: installed once, it runs each project in the project's own environment. The pinned fixture
(celery 5.2.7, kombu 5.2.4, fastapi 0.95.0 / Starlette 0.26, uvicorn 0.21.1, redis-py 4.5.4) lives in a venv of
its own on another Python (3.9 where there is one); p419 runs from this test suite's venv, called by its path,
with the project's venv not activated. Its home page uses Starlette 0.26's TemplateResponse form, which fails
under p419's own Starlette: the page answers only if the project's interpreter serves it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import clean_environ
from tests.user_stacks import UserStack, copy_project

REPO = Path(__file__).resolve().parents[2]
P419 = [str(Path(sys.executable).with_name("p419"))]  # the installed console script, by its path


def not_activated() -> dict[str, str]:
    env = clean_environ()
    env.pop("VIRTUAL_ENV", None)
    return env


def p419(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*P419, *args], cwd=root, env=env, capture_output=True, text=True, timeout=120)


def project_versions(venv: Path) -> tuple[str, str]:
    code = "import sys, celery; print('%d.%d.%d' % sys.version_info[:3], celery.__version__)"
    python, celery = subprocess.check_output([str(venv / "bin" / "python"), "-c", code], text=True).split()
    return python, celery


@pytest.fixture
def pinned(tmp_path: Path, pinned_venv: Path) -> Iterator[Path]:
    """A fresh copy of the project, its venv at .venv as a user's would be."""
    root = copy_project(tmp_path, "pinned")
    (root / ".venv").symlink_to(pinned_venv, target_is_directory=True)
    yield root


def run_the_project(stack: UserStack, root: Path, venv: Path) -> None:
    """Its API answers (the old TemplateResponse form too), a task posted through its own endpoint is SUCCESS
    in the project's interpreter, and its own test suite passes against the running stack."""
    stack.wait_ready()
    home = httpx.get(f"{stack.url}/", timeout=10)
    assert home.status_code == 200 and "Pick a task length." in home.text, home.text[:500]
    task_id = httpx.post(f"{stack.url}/tasks", json={"type": 1}, timeout=10).json()["task_id"]
    body = stack.result(f"/tasks/{task_id}", lambda b: b["task_status"] == "SUCCESS")
    python, celery = project_versions(venv)
    assert body["task_result"] == {"slept": 0.1, "python": python, "celery": celery} and celery == "5.2.7"
    suite = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=root / "project",
        env={**not_activated(), "BASE_URL": stack.url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert suite.returncode == 0 and "3 passed" in suite.stdout, suite.stdout + suite.stderr
    stack.stop_and_check_nothing_left()


def test_init_then_up_runs_an_old_pinned_project_in_its_own_venv(pinned: Path, user_stacks) -> None:
    done = p419(pinned, not_activated(), "init")
    assert done.returncode == 0, done.stderr
    assert "python: .venv/bin/python (.venv in" in done.stdout
    assert 'python = ".venv/bin/python"' in (pinned / "p419.toml").read_text()
    dry = p419(pinned, not_activated(), "up", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    python, _ = project_versions(pinned / ".venv")
    line = next(x for x in dry.stdout.splitlines() if x.startswith("python: "))
    assert (
        f".venv/bin/python {python} (python in p419.toml): celery 5.2.7, kombu 5.2.4, uvicorn 0.21.1" in line
    )
    children = [x for x in dry.stdout.splitlines() if x.startswith(("api:", "worker1:"))]
    assert len(children) == 2 and all(f"{pinned}/.venv/bin/python " in x for x in children), dry.stdout
    assert all("launch/__main__.py" in x and "-m python419" not in x for x in children)
    stack = UserStack(pinned, command=P419, **not_activated())
    user_stacks.append(stack)
    run_the_project(stack, pinned, pinned / ".venv")


def test_an_activated_venv_on_the_embedded_broker(pinned: Path, user_stacks) -> None:
    """No config file's python: the activated venv (VIRTUAL_ENV) is the project's interpreter."""
    assert p419(pinned, not_activated(), "init").returncode == 0
    config = pinned / "p419.toml"
    config.write_text(config.read_text().replace('python = ".venv/bin/python"\n', ""))
    venv = pinned / ".venv"
    activated = {
        **not_activated(),
        "VIRTUAL_ENV": str(venv),
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }
    stack = UserStack(pinned, "--broker", "embedded", command=P419, **activated)
    user_stacks.append(stack)
    stack.wait_for(r"python: .*\.venv/bin/python .* \(VIRTUAL_ENV\): celery 5\.2\.7")
    run_the_project(stack, pinned, venv)


def test_by_flags_alone(pinned: Path, user_stacks) -> None:
    """No config file at all: --python, --app-dir, --api and --celery say everything."""
    flags = ["--python", ".venv", "--app-dir", "project", "--api", "main:app", "--celery", "worker.celery"]
    stack = UserStack(pinned, *flags, command=P419, **not_activated())
    user_stacks.append(stack)
    stack.wait_for(r"python: .*\.venv/bin/python .* \(--python\): celery 5\.2\.7")
    run_the_project(stack, pinned, pinned / ".venv")


def test_an_interpreter_without_celery_is_one_line_and_exit_2(tmp_path: Path) -> None:
    root = copy_project(tmp_path, "pinned")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / ".venv")], check=True)
    assert p419(root, not_activated(), "init").returncode == 0
    done = p419(root, not_activated(), "up")
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert f"{root}/.venv/bin/python" in line and "has no celery" in line and "-m pip install" in line
    assert "Traceback" not in done.stderr


def test_p419_api_serves_the_project_in_its_own_interpreter(pinned: Path) -> None:
    """`p419 api` alone: uvicorn in the project's venv (its Starlette 0.26 home page answers)."""
    from tests.procs import free_port, wait_until

    assert p419(pinned, not_activated(), "init").returncode == 0
    port = free_port()
    env = {**not_activated(), "P419_API_PORT": str(port)}
    server = subprocess.Popen(
        [*P419, "api"], cwd=pinned, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:

        def home() -> int:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code
            except httpx.TransportError:
                return 0

        assert wait_until(lambda: home() == 200, 30)
    finally:
        server.terminate()
        out = server.communicate(timeout=20)[0]
    assert f"p419 api: python: {pinned}/.venv/bin/python" in out, out
