"""`p419`'s entry point. `up` goes straight to its own parser (cli_up.py: no typer, no pydantic before the first
child; start-up time is a goal, docs/benchmarks.md row 8), every other verb to the typer app (cli.py)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from python419.cli_support import tolerant_streams

    tolerant_streams()
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["up"]:
        from python419.cli_up import main as up

        up(args[1:])
        return
    from python419.cli import app

    app(args=args, prog_name="p419")
