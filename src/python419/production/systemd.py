"""A systemd unit that runs `p419 up` for a project: pure text from explicit values.

    [Service]
    Type=notify                 # p419 up says READY=1 once the API answers and every worker is ready
    NotifyAccess=main           # only p419 up speaks for the service (its children do not get NOTIFY_SOCKET)
    ExecStart=/abs/p419 up ...  # the project's folder as WorkingDirectory: p419 up finds its config there
    KillMode=mixed              # SIGTERM to p419 up only (it stops the children in order, workers warmly);
    TimeoutStopSec=grace+10     #   SIGKILL to the whole cgroup only after this
    Restart=on-failure          # p419 up exits 0 after SIGTERM, 1 when the stack gave up, 2 for a bad config
    RestartPreventExitStatus=2  #   (a config error is not retried: it would fail the same way)

Escaping follows systemd.syntax(7) and systemd.service(5): `%` specifiers are resolved in every value shown
here and `$` is expanded in ExecStart, so both are doubled; a word with a space or a quote is double-quoted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# TimeoutStopSec over p419's --grace: its own stop (the broker last) and the kill that follows.
STOP_MARGIN = 10.0
START_MARGIN = 30.0  # TimeoutStartSec over --ready-timeout: finding the interpreter, starting Redis
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
_SAFE_WORD = re.compile(r"[A-Za-z0-9_@%+=:,./$-]+")
_UNIT_CHARS = re.compile(r"[^A-Za-z0-9:_.-]")


class UnitError(ValueError):
    """A value that cannot be written into a unit file (a newline in a path): the message says which."""


@dataclass(frozen=True)
class UnitOptions:
    """What the unit's ExecStart passes to `p419 up`, and how systemd runs it."""

    name: str
    user_unit: bool = False  # ~/.config/systemd/user (systemctl --user): no User=, WantedBy=default.target
    grace: float = 10.0
    ready_timeout: float = 30.0
    watchdog: float | None = None  # WatchdogSec=; p419 up pings every half of it
    redis_password: bool = True  # a Redis that p419 starts gets a generated password (the service default)
    python: str | None = None  # --python: the project's interpreter, absolute
    broker: str | None = None  # --broker
    run_as: str | None = None  # User= (system units)


def export_blocker(platform: str) -> str | None:
    """A unit holds this machine's paths: written for a Linux host only."""
    if platform == "windows":
        return (
            "p419 export systemd writes a unit with this machine's paths, for a Linux host; on Windows, "
            "p419 service install registers the project's p419 up as a Windows service"
        )
    return None


def unit_name(folder: str) -> str:
    """`p419-<folder>`: only the characters a unit name may have (systemd.unit(5)), the rest as `-`."""
    stem = _UNIT_CHARS.sub("-", folder).strip("-.") or "project"
    return f"p419-{stem}"


def check_name(name: str) -> str:
    """A unit name given with --name, without its `.service`. Raises UnitError."""
    name = name.removesuffix(".service")
    if not name or _UNIT_CHARS.search(name) or name.startswith("-"):
        raise UnitError(f"--name {name!r}: use letters, digits and : _ . - (a systemd unit name)")
    return name


def _one_line(value: str, what: str) -> str:
    if "\n" in value or "\r" in value:
        raise UnitError(f"{what} {value!r} has a line break, which a unit file cannot hold")
    return value


def specifiers_escaped(value: str) -> str:
    """% starts a specifier (%h, %n) in most unit settings: a literal one is %%."""
    return value.replace("%", "%%")


def exec_word(word: str) -> str:
    """One word of an ExecStart= command line (systemd.service(5), "Command lines")."""
    word = _one_line(word, "the argument").replace("%", "%%").replace("$", "$$")
    if word and _SAFE_WORD.fullmatch(word) and word != ";":
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def exec_line(argv: Sequence[str]) -> str:
    return " ".join(exec_word(w) for w in argv)


def p419_argv(argv0: str, executable: str, is_file: Callable[[str], bool]) -> list[str]:
    """How the unit calls p419: the `p419` script this command was run as, else the one beside this interpreter,
    else `python -m python419`; always absolute (systemd wants an absolute path or a name it finds on its own
    PATH, which is not the user's). A pipx/uv-tool symlink is kept as it is, so an upgrade keeps working."""
    if Path(argv0).name in ("p419", "p419.exe") and is_file(argv0):
        return [os.path.abspath(argv0)]
    beside = os.path.join(os.path.dirname(os.path.abspath(executable)), "p419")
    if is_file(beside):
        return [beside]
    return [os.path.abspath(executable), "-m", "python419"]


def up_argv(p419: Sequence[str], options: UnitOptions) -> list[str]:
    argv = [*p419, "up", "--grace", f"{options.grace:g}", "--ready-timeout", f"{options.ready_timeout:g}"]
    argv.append("--redis-password" if options.redis_password else "--no-redis-password")
    if options.python:
        argv += ["--python", options.python]
    if options.broker:
        argv += ["--broker", options.broker]
    return argv


def render_unit(
    *,
    p419: Sequence[str],
    root: Path,
    env_files: Sequence[Path],
    options: UnitOptions,
    description: str,
) -> str:
    """The unit file. `root`: the project's folder (its config's), absolute; `env_files`: those that exist,
    named in a comment only. p419 up reads them itself at each start, as from a shell: as `EnvironmentFile=`
    they would land in p419's own environment, which outranks the config's [env] (an env file's compose host
    name, `redis://redis:6379`, then beat the loopback URL `p419 init` put in [env]), parsed by systemd's
    rules instead of p419's."""
    service = [
        "Type=notify",
        "NotifyAccess=main",
    ]
    if options.run_as and not options.user_unit:
        service.append(f"User={specifiers_escaped(_one_line(options.run_as, 'the user'))}")
    service.append(f"WorkingDirectory={specifiers_escaped(_one_line(str(root), 'the folder'))}")
    service += [
        "Environment=PYTHONUNBUFFERED=1",
        f"ExecStart={exec_line(up_argv(p419, options))}",
        f"SyslogIdentifier={options.name}",
        "KillMode=mixed",
        f"TimeoutStartSec={options.ready_timeout + START_MARGIN:g}",
        f"TimeoutStopSec={options.grace + STOP_MARGIN:g}",
        "Restart=on-failure",
        "RestartSec=2",
        "RestartPreventExitStatus=2",
    ]
    if options.watchdog:
        service.append(f"WatchdogSec={options.watchdog:g}")
    lines = [
        f"# Written by p419 export systemd for {root}.",
        "# p419 up supervises the stack (Redis, the API, the workers); systemd supervises p419 up.",
    ]
    if env_files:
        named = ", ".join(_one_line(str(path), "the env file") for path in env_files)
        lines.append(f"# p419 up reads its env files itself, at each start: {named}")
    lines += [
        "[Unit]",
        f"Description={specifiers_escaped(_one_line(description, 'the description'))}",
    ]
    if not options.user_unit:  # a user manager has no network-online.target
        lines += ["Wants=network-online.target", "After=network-online.target"]
    lines += ["", "[Service]", *service, "", "[Install]"]
    lines.append(f"WantedBy={'default.target' if options.user_unit else 'multi-user.target'}")
    return "\n".join(lines) + "\n"


def unit_dir(user_unit: bool, environ: Mapping[str, str], home: Path) -> Path:
    """Where `p419 service install` writes: /etc/systemd/system, or the user's own unit folder
    ($XDG_CONFIG_HOME/systemd/user, default ~/.config/systemd/user)."""
    if not user_unit:
        return SYSTEM_UNIT_DIR
    config = environ.get("XDG_CONFIG_HOME") or ""
    base = Path(config) if os.path.isabs(config) else home / ".config"
    return base / "systemd" / "user"
