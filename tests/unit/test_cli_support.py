"""What the verbs share: the console `p419 up` prints its stack to, chosen as rich would choose."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import clean_environ

CODE = "from python419.cli_support import stack_console; import sys; print(type(stack_console()).__name__)"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [({}, "PlainConsole"), ({"FORCE_COLOR": "1"}, "Console"), ({"TTY_COMPATIBLE": "1"}, "Console")],
)
def test_a_pipe_gets_the_plain_console_unless_colour_is_forced(extra: dict[str, str], expected: str) -> None:
    env = {k: v for k, v in clean_environ().items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    done = subprocess.run(
        [sys.executable, "-c", CODE], env={**env, **extra}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == expected, done.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="a pseudo-terminal is POSIX's")
def test_a_terminal_gets_richs_console() -> None:
    import os
    import pty

    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-c", CODE.replace("print(", "sys.stderr.write(")],  # stdout is the terminal
            env=clean_environ(),
            stdout=follower,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert done.returncode == 0 and done.stderr.strip() == "Console", done.stderr
