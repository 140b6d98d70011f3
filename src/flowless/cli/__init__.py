"""Command-line entry point: ``flowless <command> ...``.

Each command lives in its own module exposing ``add_parser(subparsers)`` and
``run(args) -> int``. The list below is explicit on purpose (no registry).
User errors (:class:`flowless.errors.FlowlessError`) print one line and exit 2;
internal errors exit 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from flowless import __version__

# (command name, module under flowless.cli). Modules import heavy libraries lazily.
COMMANDS: list[tuple[str, str]] = [
    ("synth", "synth"),
    ("dataset", "dataset"),
    ("flow", "flow"),
    ("train", "train"),
    ("train-fusion", "train_fusion"),
    ("evaluate", "evaluate"),
    ("predict", "predict"),
    ("export", "export"),
    ("benchmark", "benchmark"),
    ("demo", "demo"),
]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowless",
        description="Video action recognition that learns motion from optical flow "
        "at training time and runs without flow at test time.",
    )
    parser.add_argument("--version", action="version", version=f"flowless {__version__}")
    _common(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS:
        module = importlib.import_module(f"flowless.cli.{module_name}")
        p = module.add_parser(sub, name)
        _common(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    from flowless.errors import FlowlessError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    args.quiet = args.quiet or os.environ.get("FLOWLESS_QUIET", "") not in ("", "0")
    try:
        code = args._run(args)
    except FlowlessError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"flowless {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"flowless {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # internal error: one line unless --debug
        if args.debug:
            traceback.print_exc()
        print(
            f"flowless {args.command}: internal error: {type(exc).__name__}: {exc} "
            "(rerun with --debug for the traceback and report it)",
            file=sys.stderr,
        )
        return 1
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
