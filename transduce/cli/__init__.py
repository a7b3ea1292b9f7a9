"""The ``transduce`` command line: argument parsing only (each command is a function, registered
with its arguments by :func:`~transduce.cli.common.command`: those that make models in
``training.py``, those that use them in ``decoding.py``); the work is done by the API modules."""
from __future__ import annotations

import argparse
import inspect
import sys

# importing them registers the commands, in this order
from transduce.cli import training, decoding  # noqa: F401, I001
from transduce.cli.common import COMMANDS, Closed, Parser, setup_logging, version_line
from transduce.errors import TransduceError


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="transduce",
                description="transduce: train, decode and score sequence-to-sequence models")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=version_line())
    sub = p.add_subparsers(dest="command", required=True)
    for name, help, func, args in COMMANDS:  # each --help: its options' defaults, an example
        sp = sub.add_parser(name, help=help, description=help,
                            epilog=inspect.cleandoc(func.__doc__ or ""),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        for flags, kwargs in args:
            if "one_of" in kwargs:
                group = sp.add_mutually_exclusive_group(required=True)
                for one_flags, one_kwargs in kwargs["one_of"]:
                    group.add_argument(*one_flags, **with_default(one_kwargs))
            else:
                sp.add_argument(*flags, **with_default(kwargs))
        sp.set_defaults(func=func)
    return p


def with_default(kwargs: dict) -> dict:
    """An option's arguments with its default, when it has one worth naming, in its help."""
    default = kwargs.get("default")
    if default in (None, False, [], argparse.SUPPRESS) or "%(default)" in kwargs.get("help", ""):
        return kwargs
    return {**kwargs, "help": (kwargs.get("help", "") + " (default: %(default)s)").lstrip()}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.debug)
    sys.stdin = sys.stdin or Closed("stdin", "give the input with -i FILE, or pipe it in")
    sys.stdout = sys.stdout or Closed("stdout", "write the output with -o FILE, or redirect it")
    try:
        return args.func(args) or 0  # a command that returns nothing succeeded
    except TransduceError as e:
        if args.debug:
            raise
        print("error: " + " ".join(str(e).split("\n")), file=sys.stderr)  # always one line
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
