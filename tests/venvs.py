"""The fixture projects' own environments (scripts/project-venv: built once per requirements file and
interpreter, cached between runs). The pinned set runs on the oldest Python here (3.9 where pyenv has it), the
newest set on the newest (3.13 where pyenv has it); either falls back to this interpreter, and says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROJECTS = REPO / "tests" / "projects"
PINNED = PROJECTS / "pinned" / "project" / "requirements.txt"
LATEST = PROJECTS / "latest-requirements.txt"
PYENV = Path.home() / ".pyenv" / "versions"


def newest_python() -> str:
    """The newest CPython pyenv has (3.12+), else this one."""
    found = sorted(
        (tuple(int(p) for p in v.name.split(".")), v / "bin" / "python3")
        for v in (PYENV.iterdir() if PYENV.is_dir() else [])
        if v.name.replace(".", "").isdigit() and v.name.count(".") == 2
    )
    best = [python for version, python in found if version >= (3, 12) and python.exists()]
    return str(best[-1]) if best else sys.executable


def project_venv(requirements: Path, python: str | None = None) -> Path:
    argv = ["bash", str(REPO / "scripts" / "project-venv"), str(requirements), *([python] if python else [])]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip().splitlines()[-1])
