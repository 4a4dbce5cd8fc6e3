"""`p419 init`: read the docker-compose.yml / compose.yaml or Procfile a project already has and turn it into
its p419 configuration.

What a command line runs is pure (`recognise`: a command in, what it runs out; `script_command`,
`parse_dockerfile`: text in). The rest follows the files a service leads to, as Docker would run it: its
`command:` (else its Dockerfile's CMD), a start script the Dockerfile COPYs in (`/start` → the script's last
command), the container's working directory and bind mounts (a module path written for the container is turned
into the host's, and checked on disk), and the env files its services read (URLs naming compose services are
pointed at loopback in `[env]`, the files themselves left alone). Writing happens in `init_project` only.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from python419.addresses import with_parts
from python419.launch.child import option_value
from python419.project import CONFIG_FILE, PYPROJECT, ProjectError, find_config, parse_config

COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
PROCFILE = "Procfile"
REDIS_IMAGES = ("redis", "redis-stack", "redis-stack-server", "valkey", "keydb")
# Services p419 does not run, and what the user should do instead.
LEFT_TO_USER = {
    "postgres": "not started by p419; run PostgreSQL yourself and set DATABASE_URL",
    "mysql": "not started by p419; run MySQL yourself and set DATABASE_URL",
    "mariadb": "not started by p419; run MariaDB yourself and set DATABASE_URL",
    "mongo": "not started by p419; run MongoDB yourself and set its URL",
    "rabbitmq": "not needed: p419 runs the stack on Redis (or its embedded broker), CELERY_BROKER_URL points there",
    "nginx": "not started by p419 (a reverse proxy; the API answers directly)",
}
# What p419 up puts into an api_command: the project's interpreter and the API's address (P419_API_HOST/PORT).
PYTHON, HOST, PORT = "{python}", "{host}", "{port}"
BY_HAND = (
    'app_dir = "."             # the folder your code runs from',
    'api = "main:app"          # what you pass to uvicorn',
    'celery = "worker.celery"  # what you pass to celery -A',
)
NOTHING_FOUND = "no uvicorn/gunicorn API and no celery worker found in any service"

# --- command lines -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recognised:
    """What a command runs, as p419 would run it. `values`: for the api, `api` (an ASGI spec served by uvicorn)
    or `api_command` (another server, with PYTHON/HOST/PORT placeholders) and maybe `fastapi` (the file of
    `fastapi run`), `app_dir` (uvicorn --app-dir); for celery, `celery` (-A) and a worker's queues, pool,
    concurrency."""

    role: str  # api | worker | beat | flower
    values: dict[str, Any] = field(default_factory=dict)
    server: str = ""  # the program that serves the API: uvicorn, gunicorn, hypercorn, granian, fastapi


SHELLS = ("sh", "bash", "dash", "ash", "zsh")
_REDIRECT = re.compile(r"^(\d*|&)(>>?|<)(.*)$")
# Shell words that open or close a block: the commands of a script are what lies between them.
_OPENERS = ("then", "do", "else", "{", "!", "time")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")
_SKIPPED = ("if", "elif", "while", "until", "for", "case", "fi", "done", "esac", "}", "function", "set")


def shell_commands(text: str) -> list[list[str]] | None:
    """The simple commands of one shell line, in order: `a && b; c | d &` → [a], [b], [c]: of a pipeline
    the first command (the rest reads its output); redirections dropped. None when it does not parse."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    try:
        raw = list(lexer)
    except ValueError:
        return None
    tokens: list[str] = []
    for token in raw:  # `>&2`, `2>&1`, `&>log` are redirections, not the `&` that ends a command
        if tokens and token.startswith("&") and tokens[-1].endswith((">", "<")) and token == "&":
            tokens[-1] += token
            continue
        if tokens and tokens[-1].endswith((">&", "<&")):
            tokens[-1] += token
            continue
        tokens.append(token)
    commands: list[list[str]] = [[]]
    piped = False
    for token in tokens:
        if token in ("&&", "||", ";", "&", ";;"):
            commands.append([])
            piped = False
        elif token in ("|", "|&"):
            piped = True
        elif not piped:
            commands[-1].append(token)
    return [argv for argv in (_drop_redirections(c) for c in commands) if argv]


def _drop_redirections(argv: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        match = _REDIRECT.match(arg)
        if match and not arg.startswith("&&"):
            skip = match.group(3) == ""  # `> log`: the file is the next word
            continue
        out.append(arg)
    return out


def _last_command(text: str) -> list[str]:
    commands = shell_commands(text) or []
    return commands[-1] if commands else []


def _watchfiles_target(argv: list[str]) -> list[str]:
    """`watchfiles [options] TARGET [PATHS...]`: TARGET is a command, or a function (`celery.__main__.main`)
    called with `--args`; watchfiles tells them apart the same way."""
    valued = {"--ignore-paths", "--target-type", "--filter", "--args", "--verbosity", "--sigint-timeout"}
    valued |= {"--grace-period", "--sigkill-timeout"}
    options: dict[str, str] = {}
    positional: list[str] = []
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") and "=" in arg:
            name, value = arg.split("=", 1)
            options[name] = value
        elif arg in valued:
            options[arg] = argv[i + 1] if i + 1 < len(argv) else ""
            i += 1
        elif not arg.startswith("-"):
            positional.append(arg)
        i += 1
    if not positional:
        return []
    target, kind = positional[0], options.get("--target-type", "auto")
    function = kind == "function" or (
        kind != "command"
        and not target.endswith((".py", ".sh"))
        and re.fullmatch(r"[a-zA-Z0-9_]+(\.[a-zA-Z0-9_]+)+", target) is not None
    )
    if function:  # celery.__main__.main --args '-A app worker': the program is the function's package
        try:
            return [target.split(".", 1)[0], *shlex.split(options.get("--args", ""))]
        except ValueError:
            return []
    return _last_command(target)


def _command_flag(arg: str) -> bool:
    """`-c`, `-ec`, `-lc`: a shell's option that makes the next word its command."""
    return arg.startswith("-") and not arg.startswith("--") and "c" in arg


def strip_wrappers(argv: list[str]) -> list[str]:
    """`sh -c "..."`, `python -m celery`, `exec`, `poetry run`, `watchfiles 'celery ...'`, `FOO=1 cmd` → the
    command itself."""
    for _ in range(20):  # wrappers of wrappers, never forever
        if not argv:
            return argv
        head = PurePosixPath(argv[0]).name.removesuffix(".exe")
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", argv[0]):  # FOO=bar cmd
            argv = argv[1:]
        elif head in SHELLS and any(_command_flag(a) for a in argv[1:-1]):
            at = next(i for i, a in enumerate(argv) if i > 0 and _command_flag(a))
            argv = _last_command(argv[at + 1])
        elif head.startswith("python") and "-m" in argv[1:]:
            at = argv.index("-m")
            if not all(a.startswith("-") for a in argv[1:at]):
                return argv
            argv = argv[at + 1 :]
        elif head in ("exec", "nohup", "time", "ddtrace-run", "dumb-init", "tini", "env"):
            argv = argv[1:]
            while argv and (argv[0].startswith("-") or (head == "env" and "=" in argv[0])):
                argv = argv[1:]
        elif head in ("gosu", "su-exec") and len(argv) >= 3:
            argv = argv[2:]
        elif head in ("poetry", "pipenv", "uv", "pdm", "hatch", "rye") and len(argv) >= 2:
            argv = argv[2:] if argv[1] == "run" else argv[1:]
            while argv and argv[0].startswith("-"):
                argv = argv[1:]
        elif head == "watchfiles":
            argv = _watchfiles_target(argv)
        else:
            return argv
    return argv


def positionals(args: list[str], flags: Iterable[str]) -> list[str]:
    """Arguments that are not options or their values; `flags` are the options that take no value."""
    known = set(flags)
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out.extend(args[i + 1 :])
            break
        if arg.startswith("-") and len(arg) > 1:
            single = "=" in arg or arg in known or (not arg.startswith("--") and len(arg) > 2)
            i += 1 if single else 2
            continue
        out.append(arg)
        i += 1
    return out


def _without(args: list[str], drop_valued: Iterable[str], drop_flags: Iterable[str] = ()) -> list[str]:
    """The arguments without some options (and their values)."""
    valued, flags = set(drop_valued), set(drop_flags)
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        name = arg.split("=", 1)[0]
        if arg in flags:
            i += 1
        elif name in valued:
            i += 1 if "=" in arg else 2
        elif any(arg.startswith(short) and len(arg) > 2 for short in valued if len(short) == 2):
            i += 1  # -b0.0.0.0:80
        else:
            out.append(arg)
            i += 1
    return out


UVICORN_FLAGS = (
    "--reload",
    "--factory",
    "--proxy-headers",
    "--no-proxy-headers",
    "--access-log",
    "--no-access-log",
    "--use-colors",
    "--no-use-colors",
    "--server-header",
    "--no-server-header",
    "--date-header",
    "--no-date-header",
    "--version",
    "--help",
)
GUNICORN_FLAGS = (
    "--reload",
    "--preload",
    "-D",
    "--daemon",
    "--check-config",
    "--print-config",
    "--spew",
    "--capture-output",
    "--enable-stdio-inheritance",
    "--reuse-port",
    "--no-sendfile",
    "--strip-header-spaces",
    "-R",
    "--version",
    "-v",
    "--help",
    "-h",
)
HYPERCORN_FLAGS = ("--reload", "--debug", "--version", "-h", "--help")
GRANIAN_FLAGS = (
    "--reload",
    "--no-reload",
    "--factory",
    "--no-factory",
    "--ws",
    "--no-ws",
    "--log",
    "--no-log",
    "--access-log",
    "--no-access-log",
    "--respawn-failed-workers",
    "--no-respawn-failed-workers",
    "--version",
    "--help",
    "--reload-ignore-worker-failure",
    "--opt",
    "--no-opt",
)
FASTAPI_FLAGS = ("--reload", "--no-reload", "--proxy-headers", "--no-proxy-headers", "--help", "--version")


_SPEC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*(\(\))?")


def _asgi_spec(args: list[str], flags: Iterable[str]) -> str | None:
    """The app of a server's command line: its first argument, else (an option unknown here took it as its
    value) the first word shaped like MODULE:ATTR."""
    found = positionals(args, flags)
    if found and _SPEC.fullmatch(found[0]):
        return found[0]
    return next((a for a in args if _SPEC.fullmatch(a)), None)


def api_command_line(argv: list[str]) -> str:
    """A command line for the config, the placeholders left unquoted."""
    safe = re.compile(r"[\w@%+=:,./{}-]+")
    return " ".join(a if safe.fullmatch(a) else shlex.quote(a) for a in argv)


def recognise(command: str | list[str]) -> Recognised | None:
    """What a service's command runs, as p419 would run it; None for anything else."""
    argv = _last_command(command) if isinstance(command, str) else [str(a) for a in command]
    argv = strip_wrappers(argv)
    if not argv:
        return None
    head, args = PurePosixPath(argv[0]).name.removesuffix(".exe"), argv[1:]
    if head == "uvicorn":
        target = _asgi_spec(args, UVICORN_FLAGS)
        if not target:
            return None
        values: dict[str, Any] = {}
        app_dir = option_value(args, None, "--app-dir")
        if app_dir:
            values["app_dir"] = app_dir
        if "--factory" in args:  # a factory: uvicorn must be told, and p419's api key cannot say it
            rest = _without(args, ("--host", "--port", "--app-dir", "--uds", "--fd"), ("--reload",))
            rest = [a for a in rest if a != target]
            values["api_command"] = [PYTHON, "-m", "uvicorn", target, *rest, "--host", HOST, "--port", PORT]
        values["api"] = target
        return Recognised("api", values, "uvicorn")
    if head == "gunicorn":
        worker = option_value(args, "-k", "--worker-class") or ""
        found = positionals(args, GUNICORN_FLAGS)
        if "uvicorn" in worker.lower() and found:
            target = found[-1]  # gunicorn's APP_MODULE; without :ATTR it means `application`
            values = {"api": target if ":" in target else f"{target}:application"}
            chdir = option_value(args, None, "--chdir")
            if chdir:
                values["app_dir"] = chdir
            return Recognised("api", values, "gunicorn")
        return None
    if head == "hypercorn":
        target = _asgi_spec(args, HYPERCORN_FLAGS)
        if not target:
            return None
        rest = _without(args, ("-b", "--bind", "--insecure-bind", "--quic-bind", "--uds"), ("--reload",))
        rest = [a for a in rest if a != target]
        argv = [PYTHON, "-m", "hypercorn", *rest, "--bind", f"{HOST}:{PORT}", target]
        return Recognised("api", {"api_command": argv, "api": target}, "hypercorn")
    if head == "granian":
        target = _asgi_spec(args, GRANIAN_FLAGS)
        if not target:
            return None
        rest = _without(args, ("--host", "--port", "--uds", "--working-dir"), ("--reload",))
        rest = [a for a in rest if a != target]
        argv = [PYTHON, "-m", "granian", *rest, "--host", HOST, "--port", PORT, target]
        values = {"api_command": argv, "api": target}
        workdir = option_value(args, None, "--working-dir")
        if workdir:
            values["app_dir"] = workdir
        return Recognised("api", values, "granian")
    if head == "fastapi" and args and args[0] in ("run", "dev"):
        found = positionals(args[1:], FASTAPI_FLAGS)
        values = {"fastapi": found[0] if found else None, "fastapi_app": option_value(args, None, "--app")}
        entrypoint = option_value(args, "-e", "--entrypoint")
        if entrypoint:
            values["api"] = entrypoint
        return Recognised("api", values, "fastapi")
    if head == "celery":
        app = option_value(args, "-A", "--app")
        verb = next(iter(positionals(args, ("-q", "--quiet", "--no-color", "-C", "--skip-checks"))), None)
        workdir = option_value(args, None, "--workdir")  # celery changes to it before importing the app
        if verb == "worker":
            values = {"celery": app, **({"app_dir": workdir} if workdir else {})}
            queues = option_value(args, "-Q", "--queues")
            if queues:
                values["queues"] = [q for q in queues.split(",") if q]
            concurrency = option_value(args, "-c", "--concurrency")
            if concurrency and concurrency.isdigit():
                values["concurrency"] = int(concurrency)
            pool = option_value(args, "-P", "--pool")
            if pool:
                values["pool"] = pool
            return Recognised("worker", values, "celery")
        if verb in ("beat", "flower"):
            return Recognised(verb, {"celery": app, **({"app_dir": workdir} if workdir else {})}, "celery")
    return None


def script_of(argv: list[str]) -> str | None:
    """The shell script a command runs (`/start`, `bash ./scripts/worker.sh`), else None."""
    argv = strip_wrappers(argv)
    if not argv:
        return None
    head = PurePosixPath(argv[0]).name
    if head in SHELLS and len(argv) >= 2 and not argv[1].startswith("-"):
        return argv[1]
    if ("/" in argv[0] or argv[0].endswith(".sh")) and not head.startswith("python"):
        return None if argv[0].endswith(".py") else argv[0]
    return None


@dataclass(frozen=True)
class ScriptCommand:
    argv: list[str]
    cwd: str | None  # the last `cd` before it, if any


def script_commands(text: str) -> list[ScriptCommand]:
    """The commands a shell script runs, in order (continuations joined, blocks opened, `cd` followed)."""
    out: list[ScriptCommand] = []
    cwd: str | None = None
    pending = ""
    heredoc: str | None = None  # the word that ends the here-document being skipped
    for raw in text.splitlines():
        line = raw.strip()
        if heredoc is not None:
            heredoc = None if line == heredoc else heredoc
            continue
        if not pending and (not line or line.startswith("#")):
            continue
        opened = _HEREDOC.search(line)
        if opened:  # `python << END` ... `END`: the lines between are the command's input, not commands
            heredoc = opened.group(2)
            line = line[: opened.start()]
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        commands = shell_commands(pending)
        if commands is None:  # a quote left open: it goes on in the next line
            pending += "\n"
            continue
        pending = ""
        for argv in commands:
            while argv and argv[0] in _OPENERS:
                argv = argv[1:]
            if not argv or argv[0] in _SKIPPED or argv[0].endswith("()") or argv[1:2] == ["()"]:
                continue
            if argv[0] == "cd":
                cwd = argv[1] if len(argv) > 1 else None
                continue
            out.append(ScriptCommand(argv, cwd))
    return out


def script_command(text: str) -> ScriptCommand | None:
    """What a start script runs: its last command that p419 recognises (or that runs another script), else its
    last command."""
    commands = script_commands(text)
    for command in reversed(commands):
        if recognise(command.argv) is not None or script_of(command.argv) is not None:
            return command
    return commands[-1] if commands else None


# --- Dockerfiles and the container's file system --------------------------------------------------------


@dataclass(frozen=True)
class Copy:
    """`COPY source dest`: `source` on this machine (absolute), `dest` in the image."""

    source: Path
    dest: PurePosixPath
    into: bool  # dest is a folder that the source goes into (`COPY a.txt /app/`, `COPY x .`)

    def host(self, path: PurePosixPath) -> Path | None:
        if any(c in self.source.name for c in "*?["):
            if path.parent == self.dest and fnmatch.fnmatch(path.name, self.source.name):
                return self.source.parent / path.name
            return None
        if self.source.is_dir():  # a folder's contents land in dest
            if path == self.dest or self.dest in path.parents:
                return self.source.joinpath(*path.relative_to(self.dest).parts)
            return None
        target = self.dest / self.source.name if self.into else self.dest
        return self.source if path == target else None


@dataclass
class Dockerfile:
    path: Path
    workdir: PurePosixPath | None = None
    copies: list[Copy] = field(default_factory=list)
    cmd: str | list[str] | None = None
    entrypoint: str | list[str] | None = None


def _instructions(text: str) -> Iterator[tuple[str, str]]:
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not pending and not line):
            continue  # comments, also inside a continuation (Docker drops them there too)
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        words = (pending + line).split(None, 1)
        pending = ""
        if words:
            yield words[0].upper(), words[1].strip() if len(words) > 1 else ""
    if pending.split():
        words = pending.split(None, 1)
        yield words[0].upper(), words[1].strip() if len(words) > 1 else ""


def _exec_or_shell(rest: str) -> str | list[str]:
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except ValueError:
            return rest
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return rest


def parse_dockerfile(text: str, context: Path, path: Path) -> Dockerfile:
    """The final stage's WORKDIR, COPY/ADD (from the build context), CMD and ENTRYPOINT."""
    stages: dict[str, Dockerfile] = {}
    current = Dockerfile(path)
    variables: dict[str, str] = {}  # ARG and ENV values, for `WORKDIR ${APP_HOME}`, `COPY . $APP_HOME`

    def expand(match: re.Match[str]) -> str:
        name, default = match.group(1) or match.group(3), match.group(2)
        return variables.get(name, default if default is not None else match.group(0))

    for keyword, raw_rest in _instructions(text):
        rest = raw_rest
        if keyword in ("WORKDIR", "COPY", "ADD"):
            rest = re.sub(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)", expand, raw_rest)
        if keyword in ("ARG", "ENV"):
            pairs = re.findall(r"(\w+)=(\"[^\"]*\"|'[^']*'|\S+)", rest)
            if not pairs and len(rest.split(None, 1)) == 2 and keyword == "ENV":
                pairs = [tuple(rest.split(None, 1))]  # ENV KEY value
            variables.update({k: v.strip("\"'") for k, v in pairs})
        if keyword == "FROM":
            words = rest.split()
            base = stages.get(words[0].lower()) if words else None
            current = Dockerfile(path)
            if base is not None:  # FROM an earlier stage: what it had, it has
                current.workdir, current.copies = base.workdir, list(base.copies)
                current.cmd, current.entrypoint = base.cmd, base.entrypoint
            if len(words) >= 3 and words[-2].lower() == "as":
                stages[words[-1].lower()] = current
        elif keyword == "WORKDIR" and rest:
            current.workdir = (current.workdir or PurePosixPath("/")) / rest.strip("\"'")
        elif keyword in ("COPY", "ADD") and rest:
            value = _exec_or_shell(rest)
            try:
                words = value if isinstance(value, list) else shlex.split(value)
            except ValueError:
                continue
            flags = [w for w in words if w.startswith("--")]
            words = [w for w in words if not w.startswith("--")]
            if any(f.startswith("--from") for f in flags) or len(words) < 2:
                continue  # from another image or stage: not from this repository
            *sources, dest = words
            if any("://" in s for s in sources):
                continue
            workdir = current.workdir or PurePosixPath("/")
            target = PurePosixPath(dest) if dest.startswith("/") else workdir / dest
            into = dest.endswith("/") or dest in (".", "./") or len(sources) > 1 or target == workdir
            for source in sources:
                host = Path(context, source.strip("/") if source.strip("/") else ".")
                current.copies.append(Copy(host, target, into))
        elif keyword == "CMD":
            current.cmd = _exec_or_shell(rest)
        elif keyword == "ENTRYPOINT":
            current.entrypoint = _exec_or_shell(rest)
    return current


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


@dataclass
class Container:
    """A service's view of files: its bind mounts, what its image COPYs from the repository, its working
    directory; `host()` maps a path in the container to this machine."""

    root: Path  # the compose file's folder (absolute)
    mounts: list[tuple[PurePosixPath, Path]] = field(default_factory=list)
    dockerfile: Dockerfile | None = None
    workdir: PurePosixPath | None = None  # compose's working_dir, else the Dockerfile's WORKDIR
    fallback: Path | None = None  # where the code is when the container says nothing: a mount, the context

    def ours(self, path: Path) -> bool:
        """In the repository, or in a folder the compose file mounts (`../backend:/app`)."""
        return _inside(path, self.root) or any(_inside(path, source) for _, source in self.mounts)

    def _mappings(self) -> Iterator[tuple[PurePosixPath, Path]]:
        yield from sorted(self.mounts, key=lambda m: len(m[0].parts), reverse=True)
        for copy in reversed(self.dockerfile.copies if self.dockerfile else []):
            if copy.source.is_dir():
                yield copy.dest, copy.source

    def host(self, path: PurePosixPath) -> Path | None:
        # Bind mounts hide what the image has; the longest mount target wins, then the last COPY.
        for target, source in sorted(self.mounts, key=lambda m: len(m[0].parts), reverse=True):
            if path == target or target in path.parents:
                return source.joinpath(*path.relative_to(target).parts)
        for copy in reversed(self.dockerfile.copies if self.dockerfile else []):
            found = copy.host(path)
            if found is not None:
                return found
        # /code when only /code/src is mounted from ./src: /code is the folder above ./src.
        for target, source in self._mappings():
            if path in target.parents:
                rel = target.relative_to(path).parts
                if source.parts[-len(rel) :] == rel:
                    return Path(*source.parts[: -len(rel)])
        return None


def _service_container(root: Path, service: Mapping[str, Any]) -> Container:
    container = Container(root)
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type", "bind") != "bind":
                continue
            source, target = volume.get("source"), volume.get("target")
        else:
            parts = str(volume).split(":")
            if len(parts) < 2:
                continue
            source, target = parts[0], parts[1]
        source = re.sub(r"^\$\{?PWD\}?", ".", str(source)) if source else source
        if source and target and str(source).startswith((".", "/", "~")):
            host = (root / str(source)).expanduser().resolve()
            container.mounts.append((PurePosixPath(str(target)), host))
            if container.fallback is None and str(source).startswith("."):
                container.fallback = host
    build = service.get("build")
    context_value = build.get("context", ".") if isinstance(build, dict) else build
    if context_value is not None and "://" not in str(context_value):
        context = (root / str(context_value)).resolve()
        if container.fallback is None:
            container.fallback = context
        name = build.get("dockerfile") if isinstance(build, dict) else None
        dockerfile = context / str(name or "Dockerfile")
        if dockerfile.is_file():
            text = dockerfile.read_text(encoding="utf-8", errors="replace")
            container.dockerfile = parse_dockerfile(text, context, dockerfile)
            container.workdir = container.dockerfile.workdir
    if service.get("working_dir"):
        container.workdir = PurePosixPath(str(service["working_dir"]))
    return container


# --- modules on this machine -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Where a module lives on this machine: `folder` on the import path, `module` from there."""

    folder: Path
    module: str
    attr: str  # ":app", ".celery" (celery -A MODULE.ATTR) or ""
    file: Path

    @property
    def spec(self) -> str:
        return self.module + self.attr


def module_file(folder: Path, parts: list[str]) -> Path | None:
    if not parts or not folder.is_dir():
        return None
    base = folder.joinpath(*parts)
    for candidate in (base.with_name(parts[-1] + ".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return base if base.is_dir() else None


def _split_spec(spec: str, celery: bool) -> list[tuple[list[str], str]]:
    """(module parts, attr) readings of a spec: `m:a`; for celery -A also `pkg.mod` and `mod.ATTR`."""
    if ":" in spec:
        module, attr = spec.split(":", 1)
        return [(module.split("."), ":" + attr)]
    parts = spec.split(".")
    readings = [(parts, "")]
    if celery and len(parts) > 1:
        readings.append((parts[:-1], "." + parts[-1]))
    return readings


def place(
    spec: str, container: Container, cwd: PurePosixPath | None, *, celery: bool, app_dir: str | None = None
) -> Placement | None:
    """The module of `spec` on this machine. In the container it is imported from `cwd` (plus uvicorn's
    --app-dir): `app.app.worker` run from `/` with `./` mounted at `/app` is `app.worker` in `./`."""
    root = container.root
    for parts, attr in _split_spec(spec, celery):
        if not all(p.isidentifier() for p in parts):
            continue
        if cwd is not None:
            start = cwd / app_dir if app_dir else cwd
            for i in range(len(parts)):
                folder = container.host(start.joinpath(*parts[:i]))
                if folder is None or not container.ours(folder):
                    continue
                found = module_file(folder, parts[i:])
                if found is not None:
                    return Placement(folder, ".".join(parts[i:]), attr, found)
        for base in dict.fromkeys(b for b in (container.fallback, root) if b is not None):
            folder = (base / app_dir).resolve() if app_dir else base
            found = module_file(folder, parts)
            if found is not None and container.ours(folder):
                return Placement(folder, ".".join(parts), attr, found)
    return None


def module_of_file(file: Path) -> tuple[Path, str]:
    """How `fastapi run FILE` imports it: up through the packages (`__init__.py`), from the folder above."""
    folder, parts = file.parent, [file.stem]
    if file.stem == "__init__":
        folder, parts = file.parent.parent, [file.parent.name]
    while (folder / "__init__.py").is_file() and folder.parent != folder:
        parts.insert(0, folder.name)
        folder = folder.parent
    return folder, ".".join(parts)


def asgi_attribute(source: str) -> str | None:
    """The app `fastapi run` would pick in a module's source: `app`, then `api`, then a `FastAPI(...)`."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    names: dict[str, ast.expr | None] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names.setdefault(target.id, node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.setdefault(node.target.id, node.value)
    for preferred in ("app", "api"):
        if preferred in names:
            return preferred
    for name, value in names.items():
        if isinstance(value, ast.Call):
            func = value.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called == "FastAPI":
                return name
    return None


FASTAPI_DEFAULT_FILES = ("main.py", "app.py", "api.py", "app/main.py", "app/app.py", "app/api.py")


def place_fastapi(
    path: str | None, app_name: str | None, container: Container, cwd: PurePosixPath | None
) -> Placement | None:
    """`fastapi run [PATH] [--app NAME]`: the file (or the default ones), its module and its app."""
    candidates = [path] if path else list(FASTAPI_DEFAULT_FILES)
    for candidate in candidates:
        files: list[Path] = []
        if cwd is not None:
            mapped = container.host(
                PurePosixPath(candidate) if candidate.startswith("/") else cwd / candidate
            )
            if mapped is not None:
                files.append(mapped)
        files += [b / candidate for b in (container.fallback, container.root) if b is not None]
        for file in files:
            if file.is_dir() and (file / "__init__.py").is_file():
                file = file / "__init__.py"
            if not file.is_file() or not container.ours(file) or file.suffix != ".py":
                continue
            attr = app_name or asgi_attribute(file.read_text(encoding="utf-8", errors="replace"))
            if not attr:
                return None
            folder, module = module_of_file(file)
            return Placement(folder, module, ":" + attr, file)
    return None


def spec_from(placement: Placement, app_dir: Path) -> str | None:
    """The placement's spec imported from app_dir, when its file lies under it."""
    try:
        rel = placement.file.relative_to(app_dir)
    except ValueError:
        return None
    parts = list(rel.parts)
    if parts and parts[-1] == "__init__.py":
        parts.pop()
    elif parts and parts[-1].endswith(".py"):
        parts[-1] = parts[-1][:-3]
    if not parts or not all(p.isidentifier() for p in parts):
        return None
    return ".".join(parts) + placement.attr


# --- environment ------------------------------------------------------------------------------------------


def loopback_urls(value: str, services: set[str]) -> str:
    """`redis://redis:6379/0` → `redis://127.0.0.1:6379/0`: compose service names are hosts only inside
    compose's network; here every service runs on this machine."""
    if "://" not in value:
        return value
    try:
        host = urlsplit(value).hostname
    except ValueError:
        return value
    return with_parts(value, host="127.0.0.1") if host in services else value


def _environment(service: Mapping[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = [str(item).split("=", 1) for item in raw]
        return {p[0]: p[1] for p in pairs if len(p) == 2}
    return {str(k): str(v) for k, v in raw.items() if v is not None}


def _env_file_paths(service: Mapping[str, Any]) -> list[str]:
    raw = service.get("env_file") or []
    items = [raw] if isinstance(raw, (str, dict)) else list(raw)
    paths = [item.get("path") if isinstance(item, dict) else item for item in items]
    return [str(p) for p in paths if p]


def rewritten_env_file(path: Path, services: set[str]) -> dict[str, str]:
    """The values of an env file whose URLs name compose services, pointed at loopback; only those."""
    if not path.is_file():
        return {}
    from python419.settings import read_env_file

    values = read_env_file(path)
    out: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        local = loopback_urls(value, services)
        if local != value:
            out[key] = local
    return out


# --- reading a compose file or Procfile -------------------------------------------------------------------


@dataclass
class Found:
    config: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)  # what was found, said to the user
    left: list[str] = field(default_factory=list)  # what p419 will not do


class NothingToRun(ProjectError):
    """A compose file or Procfile in which no service runs an API or a Celery program that p419 knows."""

    def __init__(self, source: str, seen: list[str], found: Found) -> None:
        self.source, self.seen, self.found = source, seen, found
        super().__init__(f"{source}: {NOTHING_FOUND} (seen: {'; '.join(seen) or 'nothing'})")


@dataclass
class Service:
    name: str
    container: Container
    thing: Recognised | None = None
    cwd: PurePosixPath | None = None  # the container's working directory for the command (None: unknown)
    via: str = ""  # how the command was found: "/start is compose/local/fastapi/start (COPY ...)"
    seen: str = ""  # the command or image, for messages
    replicas: int = 1  # `deploy.replicas` (or the older `scale`): a worker group's count


def replicas_of(service: Mapping[str, Any]) -> int:
    """How many containers compose runs of a service: `deploy.replicas`, else the older `scale`; 1 when
    neither is a whole number in 1..64 (what a worker group's count takes)."""
    deploy = service.get("deploy")
    value = deploy.get("replicas") if isinstance(deploy, Mapping) else None
    value = service.get("scale") if value is None else value
    return value if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 64 else 1


def _rel(path: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:  # another drive (Windows)
        return str(path)


def _argv(command: Any) -> list[str] | None:
    if isinstance(command, list):
        return [str(a) for a in command]
    if isinstance(command, str):
        return _last_command(command) or None
    return None


def read_service(name: str, service: Mapping[str, Any], root: Path) -> Service:
    """What a compose service runs: its command (else its Dockerfile's CMD), followed into a start script
    in the repository when it is one."""
    container = _service_container(root, service)
    found = Service(name, container, cwd=container.workdir, replicas=replicas_of(service))
    command = service.get("command")
    origin = ""
    if command is None and container.dockerfile is not None and container.dockerfile.cmd is not None:
        command = container.dockerfile.cmd
        origin = f"the CMD of {_rel(container.dockerfile.path, root)}"
    argv = _argv(command)
    entry = _argv(service.get("entrypoint"))
    if entry is None and container.dockerfile is not None and "entrypoint" not in service:
        entry = _argv(container.dockerfile.entrypoint)
    if entry and (script_of(entry) is None or not argv):
        # `ENTRYPOINT ["uvicorn"]` + `CMD ["main:app"]`, `tini --` + the command, or an entrypoint script
        # that runs the app itself; an entrypoint script with a command is one that ends in `exec "$@"`.
        argv = entry + (argv or [])
        origin = origin.replace("the CMD", "the ENTRYPOINT and CMD") if origin else origin
    if not argv:
        found.seen = f"{name}: {service.get('image') or 'no command'}"
        return found
    shown = " ".join(argv)
    found.seen = f"{name}: {shown}"
    steps: list[str] = []
    cwd = container.workdir
    for _ in range(4):  # a script that runs a script, not forever
        thing = recognise(argv)
        if thing is not None:
            found.thing, found.cwd = thing, cwd
            if steps or origin:
                steps.append(f"`{' '.join(strip_wrappers(argv))}`")
                found.via = f"{name}: {origin + ': ' if origin else ''}{' → '.join(steps)}"
            return found
        script = script_of(argv)
        if script is None:
            break
        path = PurePosixPath(script)
        where = path if path.is_absolute() else (cwd or PurePosixPath("/")) / path
        host = container.host(where) if (cwd is not None or path.is_absolute()) else None
        if host is None and not path.is_absolute():
            host = (container.fallback or root) / script
        if host is None or not host.is_file() or not container.ours(host):
            found.seen = f"{name}: {shown} (a script not found in this repository)"
            return found
        copied = ""
        if container.dockerfile is not None and any(
            c.host(where) == host for c in container.dockerfile.copies
        ):
            copied = f", copied by {_rel(container.dockerfile.path, root)}"
        steps.append(f"{script} is {_rel(host, root)}{copied}")
        command_in_script = script_command(host.read_text(encoding="utf-8", errors="replace"))
        if command_in_script is None:
            found.seen = f"{name}: {shown} ({_rel(host, root)} runs nothing p419 recognises)"
            return found
        argv = command_in_script.argv
        if command_in_script.cwd:
            cd = PurePosixPath(command_in_script.cwd)
            cwd = cd if cd.is_absolute() else (cwd or PurePosixPath("/")) / cd
    if steps:
        found.seen = f"{name}: {shown} ({steps[-1]}, whose last command `{' '.join(argv)}` p419 does not run)"
    return found


def _placement_line(name: str, written: str, placement: Placement, service: Service, root: Path) -> str:
    where = f"from {service.cwd} in the container" if service.cwd else "in the container"
    mounts = [f"{_rel(s, root)} is {t}" for t, s in service.container.mounts]
    said = f" ({', '.join(mounts)})" if mounts else ""
    return (
        f"{name}: {written} is imported {where}{said}: on this machine that is {placement.spec} "
        f"({_rel(placement.file, root)}), from {_rel(placement.folder, root)}"
    )


def from_services(
    services: Mapping[str, Any], source: str, root: Path, *, hosts: set[str] | None = None
) -> Found:
    """The p419 configuration of compose services (or Procfile processes). `hosts`: the names that are
    hosts inside compose's network (default: these services)."""
    root = root.resolve()
    found = Found()
    names = set(services) if hosts is None else hosts
    env: dict[str, str] = {}
    env_files: list[str] = []

    def read_env(service: Mapping[str, Any]) -> None:
        env.update({k: loopback_urls(v, names) for k, v in _environment(service).items()})
        for path in _env_file_paths(service):
            if path not in env_files:
                env_files.append(path)

    groups: list[dict[str, Any]] = []
    seen: list[str] = []
    read: list[Service] = []
    steps: list[dict[str, Any]] = []
    once = completed_first(services)
    for name, raw in services.items():
        service = raw if isinstance(raw, dict) else {}
        image = str(service.get("image") or "")
        item = read_service(str(name), service, root)
        if item.thing is None and service.get("command") and (name in once or _runs_once(service)):
            once_argv = _argv(service.get("command")) or []
            steps.append({"name": _step_name(str(name), steps), "command": api_command_line(once_argv)})
            found.lines.append(f"{name}: runs once ({' '.join(once_argv)}) → [[steps]]")
            read_env(service)
            continue
        if item.thing is None:
            kind = image.split(":", 1)[0].rsplit("/", 1)[-1]
            if kind in REDIS_IMAGES:
                found.lines.append(f"{name}: Redis ({image}) → started by p419 up (or the embedded broker)")
            elif kind in LEFT_TO_USER:
                found.left.append(f"{name} ({image}): {LEFT_TO_USER[kind]}")
            else:
                found.left.append(f"{item.seen} → not started by p419")
            seen.append(item.seen)
            continue
        read.append(item)
        read_env(service)
        for before in steps_before(service.get("command")):
            steps.append({"name": _step_name(before[0], steps), "command": api_command_line(before)})
            found.lines.append(f"{name}: `{' '.join(before)}` before the server → [[steps]]")
    if not read:
        raise NothingToRun(source, seen, found)

    # Where the code is: the API's import root, else the first Celery program's.
    placements: dict[str, tuple[str, Placement | None]] = {}
    for item in read:
        assert item.thing is not None
        values = item.thing.values
        if item.thing.role == "api" and item.thing.server == "fastapi" and not values.get("api"):
            placement = place_fastapi(
                values.get("fastapi"), values.get("fastapi_app"), item.container, item.cwd
            )
            written = " ".join(["fastapi run", *([values["fastapi"]] if values.get("fastapi") else [])])
        else:
            key = "api" if item.thing.role == "api" else "celery"
            written = values.get(key) or ""
            placement = (
                place(
                    written, item.container, item.cwd, celery=key == "celery", app_dir=values.get("app_dir")
                )
                if written
                else None
            )
        placements[item.name] = (written, placement)
    order = [i for i in read if i.thing and i.thing.role == "api"] + [
        i for i in read if i.thing and i.thing.role != "api"
    ]
    chosen = next((placements[i.name][1] for i in order if placements[i.name][1] is not None), None)
    app_dir = chosen.folder if chosen else (order[0].container.fallback or root)
    if app_dir != root:  # a mount from outside the repository (../backend) stays relative too
        found.config["app_dir"] = _rel(app_dir, root)

    def spec_for(item: Service, written: str, placement: Placement | None, *, say: bool = True) -> str:
        if placement is None:
            if written:
                found.left.append(
                    f"{item.name}: no module for {written} in {_rel(app_dir, root)}: fine if it is installed in "
                    "the project's environment, else set app_dir and the module by hand"
                )
            return written
        spec = spec_from(placement, app_dir)
        if spec is None:
            found.left.append(
                f"{item.name}: {placement.spec} is in {_rel(placement.folder, root)}, outside app_dir "
                f"{_rel(app_dir, root)}: p419 runs every child from one folder"
            )
            return placement.spec
        if spec != written and say:
            found.lines.append(_placement_line(item.name, written, placement, item, root))
        return spec

    api_service = ""
    for item in read:
        thing = item.thing
        assert thing is not None
        written, placement = placements[item.name]
        values = dict(thing.values)
        if thing.role == "api" and api_service:
            found.left.append(f"{item.name}: another API; p419 up runs one ({api_service}'s), not this one")
            continue
        if item.via:
            found.lines.append(item.via)
        if thing.role == "api":
            api_service = item.name
            fastapi = thing.server == "fastapi" and not values.get("api")
            spec = spec_for(item, written, placement, say=not fastapi)
            command: list[str] | None = values.get("api_command")
            if fastapi and placement is None:
                given = values.get("fastapi")
                command = [PYTHON, "-m", "fastapi", "run", *([given] if given else []), "--host", HOST]
                command += ["--port", PORT]
                found.left.append(
                    f"{item.name}: which app `{written}` serves is not clear from the file: api_command runs "
                    "fastapi run itself (the fastapi-cli package must be installed)"
                )
            if command:
                command = [spec if a == values.get("api") and spec else a for a in command]
                found.config["api_command"] = api_command_line(command)
                served = f" served by {thing.server}" if thing.server != "fastapi" else ""
                found.lines.append(f"{item.name}: the API{served} ({spec or written}) → api_command")
            else:
                found.config["api"] = spec
                how = ""
                if fastapi and placement is not None:
                    how = f", as `{written}` imports it from {_rel(placement.folder, root)}"
                found.lines.append(f"{item.name}: the API ({spec}{how}) → api")
        elif thing.role == "worker":
            spec = spec_for(item, written, placement) if written else ""
            values.pop("celery", None)
            values.pop("app_dir", None)
            if spec:
                found.config.setdefault("celery", spec)
            count = {"count": item.replicas} if item.replicas > 1 else {}
            groups.append({"name": _group_name(item.name, groups), **count, **values})
            queues = f" on {','.join(values['queues'])}" if values.get("queues") else ""
            times = f", {item.replicas} processes" if item.replicas > 1 else ""
            found.lines.append(f"{item.name}: a Celery worker{queues}{times} → workers")
        else:
            spec = spec_for(item, written, placement) if written else ""
            if spec:
                found.config.setdefault("celery", spec)
            found.config[thing.role] = True
            found.lines.append(f"{item.name}: celery {thing.role} → {thing.role} = true")

    for path in env_files:
        file = root / path
        if not file.is_file():
            found.left.append(f"env_file {path}: no such file yet (p419 up reads it once it is there)")
            continue
        rewritten = {k: v for k, v in rewritten_env_file(file, names).items() if k not in env}
        if rewritten:
            env.update(rewritten)
            found.lines.append(
                f"{path}: {', '.join(rewritten)} name compose services → [env] on 127.0.0.1 (the file is "
                "left as it is)"
            )
    if env:
        found.config["env"] = env
    if env_files:
        found.config["env_files"] = env_files
    if groups:
        found.config["workers"] = groups
    if steps:
        found.config["steps"] = steps
    if "celery" not in found.config:
        found.left.append('no celery -A APP found: set celery = "MODULE[:ATTR]" by hand')
    return found


# Shell commands before a server's that set the scene rather than do work: not steps.
_SCENERY = {"cd", "export", "echo", "set", "sleep", "true", ":", "wait-for-it", "wait-for-it.sh", "dockerize"}


def steps_before(command: Any) -> list[list[str]]:
    """`sh -c "alembic upgrade head && uvicorn main:app"`: the work done before the server (`alembic upgrade
    head`), each a one-shot step; scene-setting (`cd`, `export`, waiting for a port) is left out."""
    argv = _argv(command) or []
    if len(argv) >= 3 and PurePosixPath(argv[0]).name in SHELLS and "-c" in argv[1:-1]:
        script = argv[argv.index("-c") + 1]  # sh -c "a && b": the script
    elif isinstance(command, str):
        script = command
    else:
        return []
    commands = shell_commands(script) or []
    return [argv for argv in commands[:-1] if PurePosixPath(argv[0]).name not in _SCENERY]


def completed_first(services: Mapping[str, Any]) -> set[str]:
    """Services others wait for with `condition: service_completed_successfully`: they run once, first."""
    once: set[str] = set()
    for raw in services.values():
        depends = raw.get("depends_on") if isinstance(raw, dict) else None
        if isinstance(depends, dict):
            once |= {
                str(n)
                for n, c in depends.items()
                if isinstance(c, dict) and c.get("condition") == "service_completed_successfully"
            }
    return once


def _runs_once(service: Mapping[str, Any]) -> bool:
    return str(service.get("restart", "")).strip().strip("\"'") == "no"


def _step_name(base: str, steps: list[dict[str, Any]]) -> str:
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in PurePosixPath(base).name) or "step"
    taken = {s["name"] for s in steps}
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    return candidate


def _group_name(service: str, groups: list[dict[str, Any]]) -> str:
    base = "".join(c if c.isalnum() or c in "-_" else "-" for c in service) or "worker"
    taken = {g["name"] for g in groups}
    name, n = base, 2
    while name in taken:
        name, n = f"{base}{n}", n + 1
    return name


def compose_services(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ProjectError(f"{path}: cannot be read as YAML ({exc})") from None
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict) or not services:
        raise NothingToRun(str(path), [], Found())
    return services


def read_compose(path: Path) -> Found:
    return from_services(compose_services(path), str(path), path.parent)


def procfile_processes(path: Path) -> dict[str, Any]:
    processes: dict[str, Any] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip():
            raise ProjectError(f"{path}:{number}: expected `name: command`")
        processes[name.strip()] = {"command": command.strip()}
    return processes


def read_procfile(path: Path, hosts: set[str] | None = None) -> Found:
    """A Procfile's processes; `hosts`: the services of a compose file beside it, whose names in `.env`'s
    URLs are pointed at loopback."""
    processes = procfile_processes(path)
    if not processes:
        raise NothingToRun(str(path), [], Found())
    found = from_services(processes, str(path), path.parent, hosts=hosts or set())
    if hosts:
        dotenv = path.parent / ".env"
        rewritten = {
            k: v for k, v in rewritten_env_file(dotenv, hosts).items() if k not in found.config.get("env", {})
        }
        if rewritten:
            found.config.setdefault("env", {}).update(rewritten)
            found.lines.append(
                f".env: {', '.join(rewritten)} name compose services → [env] on 127.0.0.1 (the file is left "
                "as it is)"
            )
    return found


def discover(folder: Path) -> tuple[Path, Found]:
    """The compose file, else (or when it runs nothing p419 knows) the Procfile."""
    compose = next((folder / n for n in COMPOSE_FILES if (folder / n).is_file()), None)
    procfile = folder / PROCFILE if (folder / PROCFILE).is_file() else None
    unrecognised: list[NothingToRun] = []
    hosts: set[str] = set()
    if compose is not None:
        try:
            return compose, read_compose(compose)
        except NothingToRun as exc:
            unrecognised.append(exc)
            try:
                hosts = set(compose_services(compose))
            except ProjectError:
                hosts = set()
    if procfile is not None:
        try:
            found = read_procfile(procfile, hosts)
        except NothingToRun as exc:
            unrecognised.append(exc)
        else:
            if unrecognised:  # the compose file's: its databases and Redis are still worth saying
                first = unrecognised[0]
                said = "; ".join(first.seen) or "no services"
                found.lines[:0] = [f"{Path(first.source).name}: no service runs the app ({said}) → Procfile"]
                found.lines[1:1] = first.found.lines
                found.left[:0] = first.found.left
            return procfile, found
    if not unrecognised:
        raise ProjectError(
            f"no docker-compose.yml, compose.yaml or Procfile in {folder}: write {CONFIG_FILE} by hand:\n"
            + "\n".join(f"    {line}" for line in BY_HAND)
        )
    said = "\n".join(str(exc) for exc in unrecognised)
    raise ProjectError(
        f"{said}\nwrite {CONFIG_FILE} by hand, e.g.:\n" + "\n".join(f"    {line}" for line in BY_HAND)
    )


# --- writing ---------------------------------------------------------------------------------------------


def render(config: dict[str, Any]) -> str:
    import tomlkit

    document = tomlkit.document()
    document.add(tomlkit.comment("Written by p419 init; see `p419 up --dry-run` for what it runs."))
    for key, value in config.items():
        if key in ("workers", "steps"):
            array = tomlkit.aot()
            for group in value:
                array.append(tomlkit.item(group))
            document.add(key, array)
        else:
            document.add(key, value)
    return tomlkit.dumps(document)


def add_python(folder: Path, found: Found) -> None:
    """`python = ...` when the project has an environment of its own (found by the same rule as `p419 up`),
    written relative to the folder when it lies inside it."""
    import sys

    from python419.interpreter import InterpreterError, find_interpreter
    from python419.platforms import detect_platform

    app_dir = found.config.get("app_dir")
    try:
        interp = find_interpreter(
            platform=detect_platform(),
            environ=os.environ,
            root=folder,
            own_executable=sys.executable,
            own_prefix=sys.prefix,
            app_dir=folder / app_dir if app_dir else None,
        )
    except InterpreterError as exc:
        found.left.append(f"python: {exc}")
        return
    if interp.own:
        found.left.append("python: no environment of the project's found; p419 up runs it with its own")
        return
    path = Path(interp.path)
    shown = path.relative_to(folder).as_posix() if path.is_relative_to(folder) else str(path)
    config = dict(found.config)
    found.config.clear()
    for key, value in config.items():
        found.config[key] = value
        if key == "app_dir":
            found.config["python"] = shown
    found.config.setdefault("python", shown)
    found.lines.append(f"python: {shown} ({interp.reason}) → python")


_OUR_HEADER = re.compile(r"^\[\[?\s*tool\s*\.\s*p419\s*[\].]")


def spaced_after_ours(text: str) -> str:
    """A blank line between [tool.p419] (and its sub-tables) and the table that follows it: tomlkit glues
    them when ours is inserted before another table."""
    lines = text.splitlines(keepends=True)
    ours = False
    for i, line in enumerate(lines):
        if _OUR_HEADER.match(line):
            ours = True
        elif ours and line.startswith("["):
            if i and lines[i - 1].strip():
                lines.insert(i, "\n")
            break
    return "".join(lines)


def init_project(folder: Path, *, force: bool = False) -> tuple[Path, Path, Found]:
    """Writes the config; returns (source read, file written, what was found). Raises ProjectError."""
    import tomlkit

    existing = find_config(folder)
    if existing is not None and existing.path.parent == folder and not force:
        raise ProjectError(
            f"{existing.path} already has a p419 configuration ({existing.table}); --force replaces it"
        )
    source, found = discover(folder)
    add_python(folder, found)
    parse_config(found.config, f"the configuration read from {source}")  # what we write must load
    pyproject = folder / PYPROJECT
    if pyproject.is_file():
        document = tomlkit.parse(pyproject.read_text(encoding="utf-8"))
        tool = document.setdefault("tool", tomlkit.table())
        tool["p419"] = tomlkit.parse(render(found.config))
        pyproject.write_text(spaced_after_ours(tomlkit.dumps(document)), encoding="utf-8")
        return source, pyproject, found
    target = folder / CONFIG_FILE
    target.write_text(render(found.config), encoding="utf-8")
    return source, target, found
