"""Which Python runs the project's children, and why.

p419 is installed once, as a tool (pipx, uv tool), so its own interpreter is rarely the project's: the API and
the workers must run in the project's environment, with the project's celery, kombu and redis. One rule picks it:

1. ``--python PATH``, then ``python = "..."`` in the config file (relative to the file's folder, or a command
   name looked up on PATH);
2. an activated virtualenv (``VIRTUAL_ENV``), unless it is p419's own;
3. ``.venv``, ``venv`` or ``env`` (a real venv: it has pyvenv.cfg) at the project root, then in app_dir;
4. what poetry, pipenv, uv or pdm say, asked only when their files are there; a slow or failing tool is skipped;
5. p419's own interpreter.

`find_interpreter` is a pure function of its arguments: the file system and subprocess edges come in as
`Edges`, so tests pass fakes and real ones alike. `query_versions` asks the chosen interpreter, in one
subprocess, which versions of the stack it has.
"""

from __future__ import annotations

import json
import ntpath
import os
import posixpath
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

from python419.platforms import Platform

TOOL_TIMEOUT = 3.0  # seconds poetry / pipenv / pdm get to answer before they are skipped
QUERY_TIMEOUT = 10.0  # seconds the chosen interpreter gets to report its versions
VENV_NAMES = (".venv", "venv", "env")
OWN_REASON = "p419's own interpreter (no project environment found)"

# The distributions the query reports, in the order start-up lines list them.
DISTRIBUTIONS = ("celery", "kombu", "uvicorn", "redis", "fastapi", "flower")

# Who needs each distribution, for the one-line "has no X, which Y need(s)" message.
NEEDED_BY: dict[str, str] = {
    "celery": "the workers",
    "kombu": "the workers",
    "redis": "the Redis broker connection",
    "uvicorn": "the API",
    "fastapi": "the API",
    "flower": "p419 up --flower",
}


class InterpreterError(Exception):
    """The project's interpreter cannot be used: the one-line message names it, where it came from, and the fix."""


@dataclass(frozen=True)
class Interpreter:
    """The Python that runs the project's children; `reason` says which rule chose it."""

    path: str
    reason: str
    own: bool


# --- the edges: subprocess and file system ------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """What a subprocess said. returncode is None when it did not finish (timed out) or could not start."""

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool = False


class Runner(Protocol):
    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> RunResult: ...


def run_command(
    argv: Sequence[str],
    *,
    timeout: float,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> RunResult:
    """Run argv with no stdin; on timeout kill it and everything it started (its own process group on POSIX),
    so a hung tool leaves nothing behind."""
    posix = os.name == "posix"
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=posix,
        )
    except OSError as exc:
        return RunResult(None, "", str(exc))
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            if posix:
                os.killpg(proc.pid, signal.SIGKILL)
            else:  # pragma: no cover - Windows
                proc.kill()
        except OSError:  # pragma: no cover - it ended on its own meanwhile
            pass
        try:
            proc.communicate(timeout=1.0)
        except subprocess.TimeoutExpired:  # pragma: no cover - a grandchild outside the group holds the pipes
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            proc.wait()
        return RunResult(None, "", "", timed_out=True)
    return RunResult(proc.returncode, out, err)


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _which(command: str, path_env: str | None) -> str | None:
    """shutil.which on the PATH given; no PATH finds nothing (rather than falling back to p419's own PATH)."""
    return shutil.which(command, path=path_env) if path_env else None


@dataclass(frozen=True)
class Edges:
    """The file system and subprocess as `find_interpreter` sees them; the defaults are the real ones."""

    is_file: Callable[[str], bool] = os.path.isfile
    is_dir: Callable[[str], bool] = os.path.isdir
    read_text: Callable[[str], str | None] = _read_text
    which: Callable[[str, str | None], str | None] = _which  # (command, PATH) -> full path
    realpath: Callable[[str], str] = os.path.realpath
    run: Runner = run_command


REAL_EDGES = Edges()


# --- choosing the interpreter -------------------------------------------------------------------


def _pathmod(platform: Platform) -> ModuleType:
    """The path functions of the target OS, so Windows paths are handled right when tested on Linux."""
    return ntpath if platform == "windows" else posixpath


def venv_python(platform: Platform, env_dir: str) -> str:
    """The interpreter inside a virtualenv: Scripts\\python.exe on Windows, bin/python elsewhere."""
    if platform == "windows":
        return ntpath.join(env_dir, "Scripts", "python.exe")
    return posixpath.join(env_dir, "bin", "python")


def _venv_rel(platform: Platform) -> str:
    return "Scripts\\python.exe" if platform == "windows" else "bin/python"


@dataclass(frozen=True)
class _Ctx:
    platform: Platform
    environ: Mapping[str, str]
    own_executable: str
    own_prefix: str
    edges: Edges
    note: Callable[[str], None]

    @property
    def pm(self) -> ModuleType:
        return _pathmod(self.platform)

    def norm(self, path: str) -> str:
        return str(self.pm.normcase(self.pm.normpath(path)))

    def same_dir(self, a: str, b: str) -> bool:
        if self.norm(a) == self.norm(b):
            return True
        return self.norm(self.edges.realpath(a)) == self.norm(self.edges.realpath(b))

    def is_venv(self, env_dir: str) -> bool:
        return self.edges.is_file(self.pm.join(env_dir, "pyvenv.cfg"))

    def env_of(self, python: str) -> str | None:
        """The virtualenv an interpreter path lies in (…/bin/python -> …), or None."""
        env_dir = self.pm.dirname(self.pm.dirname(python))
        return env_dir if env_dir and self.is_venv(env_dir) else None

    def make(self, path: str, reason: str, env_dir: str | None = None) -> Interpreter:
        env_dir = env_dir if env_dir is not None else self.env_of(path)
        own = self.norm(path) == self.norm(self.own_executable) or (
            env_dir is not None and self.same_dir(env_dir, self.own_prefix)
        )
        return Interpreter(str(self.pm.normpath(path)), reason, own)

    def home(self, value: str) -> str:
        """~ and ~/x from the environment given (HOME, or USERPROFILE on Windows), not the process's."""
        if not (value == "~" or value.startswith(("~/", "~\\"))):
            return value
        home = self.environ.get("HOME") or (
            self.environ.get("USERPROFILE") if self.platform == "windows" else None
        )
        return home + value[1:] if home else value


def _is_bare(value: str) -> bool:
    """A command name (python3.9), not a path: no folder separator in it."""
    return "/" not in value and "\\" not in value and value not in (".", "..") and not value.startswith("~")


def _configured(ctx: _Ctx, value: str, base: str, source: str, reason: str, fix: str) -> Interpreter:
    """--python or python = "...": a file, a virtualenv folder, or a command on PATH. Missing is an error."""
    pm = ctx.pm
    value = ctx.home(value.strip())
    if not value:
        raise InterpreterError(f"{source} is empty: {fix}")
    if _is_bare(value):
        found = ctx.edges.which(value, ctx.environ.get("PATH"))
        if found:
            return ctx.make(found, reason)
    candidate = str(pm.normpath(value if pm.isabs(value) else pm.join(base, value)))
    if ctx.edges.is_dir(candidate):
        python = venv_python(ctx.platform, candidate)
        if ctx.edges.is_file(python):
            return ctx.make(python, reason, candidate if ctx.is_venv(candidate) else None)
        raise InterpreterError(
            f"{source}: {candidate} is a folder without {_venv_rel(ctx.platform)}; "
            f"give the interpreter itself or a virtualenv folder: {fix}"
        )
    if ctx.edges.is_file(candidate):
        return ctx.make(candidate, reason)
    if ctx.platform == "windows" and not pm.splitext(candidate)[1] and ctx.edges.is_file(candidate + ".exe"):
        return ctx.make(candidate + ".exe", reason)
    if _is_bare(value):
        raise InterpreterError(f"{source}: no {value} on PATH and no {candidate}: {fix}")
    where = "" if pm.isabs(value) else f" (relative paths start at {base})"
    raise InterpreterError(f"{source}: {candidate} does not exist{where}: {fix}")


def _from_virtual_env(ctx: _Ctx) -> Interpreter | None:
    env_dir = ctx.environ.get("VIRTUAL_ENV", "").strip()
    if not env_dir:
        return None
    if ctx.same_dir(env_dir, ctx.own_prefix):
        ctx.note(f"VIRTUAL_ENV {env_dir} is p419's own environment, not the project's: skipped")
        return None
    python = venv_python(ctx.platform, env_dir)
    if not ctx.edges.is_file(python):
        raise InterpreterError(
            f"VIRTUAL_ENV is {env_dir}, but {python} does not exist: deactivate that virtualenv "
            "(or recreate it), or point p419 at the project's python with --python / python = ..."
        )
    return ctx.make(python, "VIRTUAL_ENV", env_dir)


def _from_folders(ctx: _Ctx, bases: Sequence[str]) -> Interpreter | None:
    for base in bases:
        for name in VENV_NAMES:
            env_dir = ctx.pm.join(base, name)
            if not ctx.is_venv(env_dir):
                continue
            python = venv_python(ctx.platform, env_dir)
            if ctx.edges.is_file(python):
                return ctx.make(python, f"{name} in {base}", env_dir)
            raise InterpreterError(
                f"{env_dir} is a virtualenv without {_venv_rel(ctx.platform)} (was its base Python removed, "
                f"or was it made on another OS?): recreate it (python -m venv --clear {env_dir}), "
                "or point p419 at another with --python / python = ..."
            )
    return None


_POETRY_TABLE = re.compile(r"^\s*\[\s*tool\s*\.\s*poetry\s*[\].]", re.MULTILINE)


def _ask_tool(ctx: _Ctx, tool: str, args: Sequence[str], base: str, timeout: float) -> str | None:
    """The last line `tool args` prints in base, or None (with a note) when it is absent, slow or failing."""
    exe = ctx.edges.which(tool, ctx.environ.get("PATH"))
    if exe is None:
        ctx.note(f"{tool}: its files are in {base} but the command is not on PATH: skipped")
        return None
    # Without VIRTUAL_ENV: reaching here means it is unset or p419's own, and poetry/pdm would answer with it.
    env = {k: v for k, v in ctx.environ.items() if k != "VIRTUAL_ENV"}
    env["PYTHONIOENCODING"] = "utf-8"
    result = ctx.edges.run([exe, *args], timeout=timeout, cwd=base, env=env)
    if result.timed_out:
        ctx.note(f"{tool} {' '.join(args)} did not answer within {timeout:g} s: skipped")
        return None
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if result.returncode != 0 or not lines:
        said = _last_line(result.stderr) or f"exit code {result.returncode}"
        ctx.note(f"{tool} {' '.join(args)} gave no environment ({said}): skipped")
        return None
    return str(ctx.pm.join(base, lines[-1]))  # a relative answer is taken from the folder it was asked in


def _venv_answer(ctx: _Ctx, env_dir: str, reason: str, tool: str) -> Interpreter | None:
    python = venv_python(ctx.platform, env_dir)
    if ctx.edges.is_file(python):
        return ctx.make(python, reason, env_dir)
    ctx.note(f"{tool}: no interpreter at {python}: skipped")
    return None


def _from_tools(ctx: _Ctx, bases: Sequence[str], timeout: float) -> Interpreter | None:
    pm, is_file = ctx.pm, ctx.edges.is_file
    for base in bases:
        pyproject_file = pm.join(base, "pyproject.toml")
        pyproject = ctx.edges.read_text(pyproject_file) if is_file(pyproject_file) else None
        if is_file(pm.join(base, "poetry.lock")) or (pyproject and _POETRY_TABLE.search(pyproject)):
            answer = _ask_tool(ctx, "poetry", ["env", "info", "-p"], base, timeout)
            if answer and (found := _venv_answer(ctx, answer, "poetry env", "poetry")):
                return found
        if is_file(pm.join(base, "Pipfile")):
            answer = _ask_tool(ctx, "pipenv", ["--venv"], base, timeout)
            if answer and (found := _venv_answer(ctx, answer, "pipenv --venv", "pipenv")):
                return found
        if is_file(pm.join(base, "uv.lock")):
            # uv's project environment is .venv unless UV_PROJECT_ENVIRONMENT says otherwise (relative to the
            # workspace root): https://github.com/astral-sh/uv/pull/6834
            setting = ctx.environ.get("UV_PROJECT_ENVIRONMENT", "").strip()
            env_dir = pm.join(base, setting) if setting else pm.join(base, ".venv")
            reason = "UV_PROJECT_ENVIRONMENT (uv.lock)" if setting else f"uv project .venv in {base}"
            if found := _venv_answer(ctx, str(pm.normpath(env_dir)), reason, "uv"):
                return found
        if is_file(pm.join(base, "pdm.lock")):
            answer = _ask_tool(ctx, "pdm", ["info", "--python"], base, timeout)
            if answer:
                if is_file(answer):
                    return ctx.make(answer, "pdm info --python")
                ctx.note(f"pdm: {answer} does not exist: skipped")
    return None


def find_interpreter(
    *,
    platform: Platform,
    environ: Mapping[str, str],
    root: str | os.PathLike[str],
    own_executable: str,
    own_prefix: str,
    app_dir: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    flag: str | None = None,
    configured: str | None = None,
    config_file: str | os.PathLike[str] | None = None,
    edges: Edges = REAL_EDGES,
    tool_timeout: float = TOOL_TIMEOUT,
    on_skip: Callable[[str], None] | None = None,
) -> Interpreter:
    """The interpreter for the project's children, by the one rule in this module's docstring.

    `flag` is --python (relative to `cwd`, default root); `configured` is python = "..." from `config_file`
    (relative to its folder). `own_executable` / `own_prefix` are p419's sys.executable / sys.prefix.
    `on_skip` hears why a candidate was passed over (p419's own VIRTUAL_ENV, a slow or failing tool).
    """
    ctx = _Ctx(platform, environ, own_executable, own_prefix, edges, on_skip or (lambda _msg: None))
    pm = ctx.pm
    root_s = str(pm.normpath(os.fspath(root)))
    fix = "give the path of the project's python (or its virtualenv folder)"
    if flag is not None:
        base = str(pm.normpath(os.fspath(cwd))) if cwd is not None else root_s
        return _configured(ctx, flag, base, f"--python {flag}", "--python", f"{fix}, e.g. --python .venv")
    if configured is not None:
        if config_file is None:
            where = label = "the config file"
            base = root_s
        else:
            where = os.fspath(config_file)
            name = pm.basename(where)
            label = f"{name} [tool.p419]" if name == "pyproject.toml" else name
            base = str(pm.dirname(pm.normpath(where))) or root_s
        return _configured(
            ctx,
            configured,
            base,
            f'python = "{configured}" in {where}',
            f"python in {label}",
            f"{fix}, or remove the line to let p419 find the project's environment",
        )
    if found := _from_virtual_env(ctx):
        return found
    bases = [root_s]
    if app_dir is not None:
        app_s = str(pm.normpath(os.fspath(app_dir)))
        if ctx.norm(app_s) != ctx.norm(root_s):
            bases.append(app_s)
    if found := _from_folders(ctx, bases):
        return found
    if found := _from_tools(ctx, bases, tool_timeout):
        return found
    return Interpreter(own_executable, OWN_REASON, True)


# --- what the interpreter has --------------------------------------------------------------------


@dataclass(frozen=True)
class Versions:
    """An interpreter's version and its stack's distributions (None: not installed)."""

    python: tuple[int, int, int]
    celery: str | None = None
    kombu: str | None = None
    uvicorn: str | None = None
    redis: str | None = None
    fastapi: str | None = None
    flower: str | None = None

    def get(self, name: str) -> str | None:
        if name not in DISTRIBUTIONS:
            raise ValueError(f"unknown distribution {name!r}; known: {', '.join(DISTRIBUTIONS)}")
        value: str | None = getattr(self, name)
        return value

    @property
    def python_text(self) -> str:
        return ".".join(str(part) for part in self.python)


_MARKER = "--p419-versions--"

# Runs in the project's interpreter: stdlib only, and syntax any Python can parse (even 2.7), so a too-old
# interpreter gets a clear answer instead of a SyntaxError. The versions are read from the installed metadata's
# folder names (NAME-VERSION.dist-info; an unversioned .egg-info's PKG-INFO), the first on sys.path winning as
# for an import: 15 ms where importing importlib.metadata cost 65 ms of every `p419 up` (scripts/bench). The
# empty sys.path[0] of -c (the current folder) goes first, so a json.py lying there cannot shadow the stdlib;
# PYTHONPATH and user site stay, as the children will have them.
_SCAN = """\
import os, re
def scan(path, names):
    def norm(name):
        return re.sub(r'[-_.]+', '_', name).lower()
    wanted = dict((norm(n), n) for n in names)
    found = dict((n, None) for n in names)
    for entry in path:
        try:
            items = os.listdir(entry or '.')
        except OSError:
            continue
        for item in items:
            if not item.endswith(('.dist-info', '.egg-info')):
                continue
            parts = item.rsplit('.', 1)[0].split('-')
            name = wanted.get(norm(parts[0]))
            if name is None or found[name] is not None:
                continue
            if len(parts) > 1:
                found[name] = parts[1]
                continue
            try:
                with open(os.path.join(entry, item, 'PKG-INFO')) as info:
                    found[name] = [l.split(':', 1)[1].strip() for l in info if l.startswith('Version:')][0]
            except (OSError, IndexError):
                pass
    return found
"""
_QUERY = (
    "import sys\n"
    "if sys.path and sys.path[0] == '':\n"
    "    del sys.path[0]\n"
    "import json\n"
    + _SCAN
    + "out = {'python': list(sys.version_info[:3])}\n"
    + f"out['packages'] = scan(sys.path, {DISTRIBUTIONS!r})\n"
    + f"sys.stdout.write('\\n' + {_MARKER!r} + json.dumps(out) + '\\n')\n"
)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def query_versions(
    python: str,
    run: Runner = run_command,
    *,
    timeout: float = QUERY_TIMEOUT,
    env: Mapping[str, str] | None = None,
) -> Versions:
    """One subprocess of `python` reports its version and the stack's distributions, as JSON on stdout."""
    result = run([python, "-c", _QUERY], timeout=timeout, env=env)
    if result.timed_out:
        raise InterpreterError(f"`{python}` did not answer within {timeout:g} s: is it a working Python?")
    if result.returncode != 0:
        said = _last_line(result.stderr) or (
            f"exit code {result.returncode}" if result.returncode is not None else "it could not start"
        )
        raise InterpreterError(f"`{python}` cannot run: {said}")
    _, marker, payload = result.stdout.rpartition(_MARKER)
    try:
        if not marker:
            raise ValueError("no answer")
        data: Any = json.loads(payload.splitlines()[0])
        major, minor, micro = (int(part) for part in data["python"])
        packages = data.get("packages")
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise InterpreterError(
            f"`{python}` gave no version answer (stdout: {_last_line(result.stdout)[:200]!r}): is it a Python?"
        ) from None
    version = (major, minor, micro)
    if not isinstance(packages, dict):
        raise InterpreterError(
            f"`{python}` is Python {'.'.join(map(str, version))}, which p419 cannot run a project on "
            "(3.8 or newer needed): point p419 at the project's environment with --python / python = ..."
        )

    def have(name: str) -> str | None:
        value = packages.get(name)
        return value if isinstance(value, str) else None

    return Versions(
        version,
        celery=have("celery"),
        kombu=have("kombu"),
        uvicorn=have("uvicorn"),
        redis=have("redis"),
        fastapi=have("fastapi"),
        flower=have("flower"),
    )


def missing_for(versions: Versions, needs: set[str]) -> list[str]:
    """The distributions `needs` names that the interpreter lacks, in DISTRIBUTIONS order."""
    unknown = needs - set(DISTRIBUTIONS)
    if unknown:
        raise ValueError(f"unknown distribution(s) {sorted(unknown)}; known: {', '.join(DISTRIBUTIONS)}")
    return [name for name in DISTRIBUTIONS if name in needs and versions.get(name) is None]


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _shell_quote(path: str) -> str:
    return f'"{path}"' if any(c in path for c in " '&()") else path


def require(interp: Interpreter, versions: Versions, needs: set[str]) -> None:
    """Raise InterpreterError (one line: interpreter, packages, who needs them, the fix) when any is missing."""
    missing = missing_for(versions, needs)
    if not missing:
        return
    roles: list[str] = []
    for name in missing:
        if NEEDED_BY[name] not in roles:
            roles.append(NEEDED_BY[name])
    verb = "need" if len(roles) > 1 or roles[0] == "the workers" else "needs"
    head = f"`{interp.path}` (from {interp.reason}) has no {_and(missing)}, which {_and(roles)} {verb}"
    point = 'point p419 at the project\'s environment with --python PATH or python = "..." in p419.toml'
    if interp.own:
        raise InterpreterError(f"{head}: no project environment was found, so {point}")
    install = f"{_shell_quote(interp.path)} -m pip install {' '.join(missing)}"
    raise InterpreterError(f"{head}: {install}, or {point}")


def describe(interp: Interpreter, versions: Versions) -> str:
    """The start-up line: which python, its version, why it was chosen, and the stack it has."""
    present = [f"{name} {versions.get(name)}" for name in DISTRIBUTIONS if versions.get(name) is not None]
    stack = ", ".join(present) if present else f"none of {', '.join(DISTRIBUTIONS)}"
    return f"python: {interp.path} {versions.python_text} ({interp.reason}): {stack}"


# --- known-bad combinations (for doctor) ---------------------------------------------------------


def _release(version: str) -> tuple[int, ...]:
    """The numeric release of a version string: "5.3.0rc1" -> (5, 3, 0). Pre-release tags are ignored."""
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", version)
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def _cmp(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    width = max(len(a), len(b))
    a, b = a + (0,) * (width - len(a)), b + (0,) * (width - len(b))
    return (a > b) - (a < b)


_OPS: dict[str, Callable[[int], bool]] = {
    "<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    "==": lambda c: c == 0,
    ">=": lambda c: c >= 0,
    ">": lambda c: c > 0,
}


@dataclass(frozen=True)
class KnownProblem:
    """A combination that is known not to work. Every condition must hold; a distribution that is not
    installed fails its conditions. `name` is "python" or a distribution in DISTRIBUTIONS."""

    conditions: tuple[tuple[str, str, str], ...]  # (name, op, version), e.g. ("kombu", "<", "5.3.3")
    reason: str
    source: str

    def applies(self, versions: Versions) -> bool:
        for name, op, bound in self.conditions:
            have = versions.python_text if name == "python" else versions.get(name)
            if have is None or not _OPS[op](_cmp(_release(have), _release(bound))):
                return False
        return True


KNOWN_PROBLEMS: tuple[KnownProblem, ...] = (
    KnownProblem(
        (("python", ">=", "3.12"), ("kombu", "<", "5.3.3")),
        "kombu before 5.3.3 fails on Python 3.12+ (AttributeError: 'cached_property' object has no attribute "
        "'lock'): upgrade kombu to 5.3.3 or newer",
        # Fixed by kombu#1811, released in 5.3.3 ("Added Python 3.12 support", kombu's Changelog).
        "https://github.com/celery/kombu/issues/1804",
    ),
    KnownProblem(
        (("python", ">=", "3.12"), ("celery", "<", "5.3.5")),
        "celery supports Python 3.12 from 5.3.5 on: upgrade celery, or run the project on Python 3.11",
        # The v5.3.5 release notes: "Main theme of this release is adding Python 3.12 compatibility support".
        "https://github.com/celery/celery/discussions/8631",
    ),
    KnownProblem(
        (("python", ">=", "3.13"), ("celery", "<", "5.5.0")),
        "celery supports Python 3.13 from 5.5.0 on: upgrade celery, or run the project on Python 3.12",
        # "This version is officially supported on CPython 3.8, 3.9, 3.10, 3.11, 3.12 and 3.13" (5.5 only);
        # 3.13 support was added after 5.4: https://github.com/celery/celery/pull/9309
        "https://docs.celeryq.dev/en/stable/history/whatsnew-5.5.html",
    ),
    KnownProblem(
        (("kombu", ">=", "5.2.0"), ("redis", "<", "3.4.1")),
        "kombu 5.2+ passes a username to redis-py, which redis-py before 3.4.1 rejects (TypeError: __init__() "
        "got an unexpected keyword argument 'username'): upgrade redis",
        # kombu 5.2.1 then required redis>=3.4.1 (kombu commit 94b2331c, "Bump redis version to >= 3.4.1").
        "https://github.com/celery/kombu/issues/1419",
    ),
    KnownProblem(
        (("kombu", ">=", "0"), ("redis", ">=", "4.0.0"), ("redis", "<", "4.0.2")),
        "redis-py 4.0.0 and 4.0.1 break kombu's Redis transport; kombu allows redis-py 4 from 4.0.2: upgrade redis",
        # kombu's "Allow redis >= 4.0.2" cites https://github.com/redis/redis-py/issues/1714
        "https://github.com/celery/kombu/pull/1445",
    ),
    KnownProblem(
        (("redis", "==", "4.5.5"),),
        "redis-py 4.5.5 has severe bugs and is excluded by celery and kombu: upgrade redis",
        # kombu's requirements/extras/redis.txt excludes it since 2023-09 (!=4.5.5), celery since 5.3.1.
        "https://github.com/celery/celery/pull/8317",
    ),
    KnownProblem(
        (("kombu", ">=", "5.6.1"), ("kombu", "<", "5.6.2"), ("redis", "<", "5.3.0")),
        "kombu 5.6.1 passes credential_provider, which redis-py before 5.3.0 rejects (TypeError: "
        "Connection.__init__() got an unexpected keyword argument 'credential_provider'): "
        "upgrade kombu to 5.6.2+ or redis to 5.3.0+",
        # Fixed by https://github.com/celery/kombu/pull/2423, released in kombu 5.6.2.
        "https://github.com/celery/kombu/issues/2419",
    ),
    KnownProblem(
        (("kombu", "<", "5.4.0"), ("redis", ">=", "0")),
        "with kombu before 5.4.0 a worker stops consuming tasks after its Redis connection is lost and "
        "re-established: upgrade kombu to 5.4.0 or newer",
        # Fixed by https://github.com/celery/kombu/pull/2007 (kombu 5.4.0), per the maintainers in this issue.
        "https://github.com/celery/celery/issues/8091",
    ),
)


def known_problems(versions: Versions, table: Sequence[KnownProblem] = KNOWN_PROBLEMS) -> list[str]:
    """One line per known-bad combination the interpreter has: what is installed, why it fails, the source."""
    lines = []
    for problem in table:
        if problem.applies(versions):
            names = dict.fromkeys(name for name, _op, _bound in problem.conditions)
            have = ", ".join(
                f"Python {versions.python_text}" if name == "python" else f"{name} {versions.get(name)}"
                for name in names
            )
            lines.append(f"{have}: {problem.reason} ({problem.source})")
    return lines


__all__ = [
    "DISTRIBUTIONS",
    "KNOWN_PROBLEMS",
    "Edges",
    "Interpreter",
    "InterpreterError",
    "KnownProblem",
    "RunResult",
    "Runner",
    "Versions",
    "describe",
    "find_interpreter",
    "known_problems",
    "missing_for",
    "query_versions",
    "require",
    "run_command",
    "venv_python",
]


# --- the project's interpreter, as every verb asks for it ------------------------------------------


@dataclass(frozen=True)
class ProjectPython:
    interpreter: Interpreter
    versions: Versions

    @property
    def path(self) -> str:
        return self.interpreter.path

    @property
    def line(self) -> str:
        return describe(self.interpreter, self.versions)


def own_versions() -> Versions:
    """p419's own interpreter, read in-process by the query's own scan (no subprocess for the bundled app; and
    not importlib.metadata, whose import cost `p419 up` ~15 ms before its first child)."""
    space: dict[str, Any] = {}
    exec(compile(_SCAN, "<p419 version scan>", "exec"), space)
    found: dict[str, str | None] = space["scan"](sys.path, DISTRIBUTIONS)
    major, minor, micro = sys.version_info[:3]
    return Versions((major, minor, micro), **found)


def choose_interpreter(
    *,
    platform: Platform,
    environ: Mapping[str, str],
    root: str | os.PathLike[str],
    app_dir: str | os.PathLike[str] | None,
    flag: str | None,
    configured: str | None,
    config_file: str | os.PathLike[str] | None,
    bundled: bool,
    cwd: str | os.PathLike[str] | None = None,
    on_skip: Callable[[str], None] | None = None,
) -> Interpreter:
    """The interpreter that runs a project's children, by this module's rule. The bundled app runs in p419's
    own interpreter, which has it."""
    if bundled and flag is None:
        return Interpreter(sys.executable, "the bundled app: p419's own interpreter", True)
    return find_interpreter(
        platform=platform,
        environ=environ,
        root=root,
        own_executable=sys.executable,
        own_prefix=sys.prefix,
        app_dir=app_dir,
        cwd=cwd,
        flag=flag,
        configured=configured,
        config_file=config_file,
        on_skip=on_skip,
    )


def with_versions(interp: Interpreter) -> ProjectPython:
    """The interpreter with what it has (one query; p419's own is read in-process)."""
    versions = own_versions() if interp.own and interp.path == sys.executable else query_versions(interp.path)
    return ProjectPython(interp, versions)
