"""The products API against its own OpenAPI document, with schemathesis (every check, a fixed seed): no 5xx,
every answer as declared (status codes, bodies, headers such as Allow), a boolean never taken for a price."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.procs import Stack


def test_schemathesis_finds_nothing(stack: Stack, tmp_path: Path) -> None:
    binary = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    done = subprocess.run(
        [
            binary,
            "run",
            f"{stack.api_url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "40",
            "--seed",
            "419",
            "--request-timeout",
            "10",
            "--generation-deterministic",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "No issues found" in done.stdout or "passed" in done.stdout, done.stdout[-3000:]
