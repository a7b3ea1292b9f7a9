"""What the commands share: the registry (:func:`command`, :func:`arg`), argument types and groups,
input/output, loading a model, logging and the version."""
from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from transduce.errors import TransduceError

log = logging.getLogger("transduce")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the moment, so a progress bar that redirects
    stderr (rich's live display) keeps log lines above the bar."""

    stream = property(lambda self: sys.stderr, lambda self, _value: None)  # setting it: a no-op


class Closed:
    """Stands for stdin or stdout when the process started without it (``<&-``, ``>&-``): using
    it is a one-line error instead of an AttributeError on None (or, for print, silence)."""

    def __init__(self, name: str, fix: str):
        self.name, self.fix = name, fix

    def isatty(self) -> bool:
        return False

    def flush(self) -> None:  # the interpreter flushes stdout at exit
        pass

    def __getattr__(self, _name: str):  # read, write, buffer, ...
        raise TransduceError(f"{self.name} is closed; {self.fix}")


def setup_logging(debug: bool) -> None:
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if debug else logging.INFO)
    log.propagate = False


@contextmanager
def startup() -> Iterator[None]:
    """Imports and model loading without the cyclic garbage collector; what they made is then
    frozen (``gc.freeze``: never scanned again, it lives as long as the process anyway).

    Importing torch makes about a million long-lived objects, and every full collection scans
    them all, during the imports and again at exit: about 0.5 s of a ``translate`` run on one
    core. The few reference cycles left by the imports stay in memory. The commands that load a
    model import torch and load it in here.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def load_model(args: argparse.Namespace):
    """The model of ``args.model_dir`` (torch imported and the model loaded in :func:`startup`)."""
    with startup():
        from transduce.api import load

        dirs = args.model_dir if isinstance(args.model_dir, list) else [args.model_dir]
        return load(dirs[0] if len(dirs) == 1 else dirs, args.checkpoint, args.device,
                    getattr(args, "quantize", None))


def read_input(path: str | None) -> list[str]:
    """Lines of a file or stdin; invalid UTF-8 is reported with its line number."""
    from transduce.data.corpus import read_lines, split_lines

    if path and path != "-":
        return read_lines(path)
    return split_lines(sys.stdin.buffer.read(), "<stdin>", "convert the input to UTF-8")


def write_output(lines: list[str], path: str | None) -> None:
    text = "".join(line + "\n" for line in lines)
    if path and path != "-":
        try:
            Path(path).write_text(text, encoding="utf-8")
        except OSError as e:
            raise TransduceError(f"{path}: cannot write the output ({e.strerror}); check the "
                                 "path and its permissions") from None
    else:
        print(text, end="", flush=True)


def nothing_to_score(refs: list, *paths: str) -> None:
    if not refs:
        raise TransduceError(f"{' and '.join(paths)}: the files are empty, there is nothing to "
                             "score; check the paths")


def decode_options(args: argparse.Namespace) -> dict:
    """The decoding flags and ``--set decoding.KEY=VALUE`` as DecodingConfig overrides (None: the
    model's config decides; a flag wins over --set)."""
    from transduce.overrides import parse_set

    opts = {}
    for item in args.set:
        key, value = parse_set(item)
        section, _, name = key.partition(".")
        if section != "decoding" or not name:
            raise TransduceError(f"--set {item}: only decoding.KEY=VALUE can be set here (the "
                                 "model's other settings were fixed by training)")
        opts[name] = value
    flags = {k: getattr(args, k, None) for k in ("beam_size", "batch_size", "max_len", "n_best")}
    opts.update({k: v for k, v in flags.items() if v is not None})
    if args.sample:
        opts.update(sampling=True, temperature=args.temperature, top_k=args.top_k,
                    top_p=args.top_p, seed=args.seed)
    return opts


def print_scores(hyps: list[str], refs: list[list[str]], args: argparse.Namespace) -> None:
    """Scores ``hyps`` against ``refs`` (a list of references per hypothesis) with
    ``--metrics``; prints them as ``--json`` asks."""
    from transduce.evaluate import evaluate

    scores = evaluate(hyps, refs, args.metrics.split(","))
    if args.json:
        print(json.dumps(scores))
        return
    for key in ("bleu", "chrf", "rouge1", "rouge2", "rougeL", "cider"):
        if key in scores:
            print(f"{key:7s} {scores[key]:6.2f}")
    for metric, sig in scores.get("signature", {}).items():
        print(f"signature ({metric}): {sig}")


class Parser(argparse.ArgumentParser):
    """argparse with transduce's error format: one line, ``error: ...``, exit status 2."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.prog != "transduce":  # subcommands also take --debug after their name
            self.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                              help="show tracebacks")

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def number(kind: type, low: float | None = None, high: float | None = None,
            low_open: bool = False):
    """An argparse type: a finite number of ``kind`` within [low, high] (``low_open``: above
    low)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or kind is float and not math.isfinite(value):  # also nan, inf
            raise argparse.ArgumentTypeError(
                f"expected {'a whole number' if kind is int else 'a number'}, got {text!r}")
        if low is not None and (value <= low if low_open else value < low):
            raise argparse.ArgumentTypeError(
                f"must be {'above' if low_open else 'at least'} {low:g}, got {text}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high:{'d' if kind is int else 'g'}}"
                                             f", got {text}")
        return value
    return parse


POSITIVE = number(int, 1)
COMMANDS: list[tuple[str, str, Callable[[argparse.Namespace], int | None], tuple]] = []


def arg(*flags: str, **kwargs: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """One argument of a command: the parameters of ``ArgumentParser.add_argument``."""
    return flags, kwargs


def one_of(*args: tuple[tuple[str, ...], dict[str, Any]]) -> tuple[tuple[()], dict[str, Any]]:
    """Arguments of which exactly one must be given (a required mutually exclusive group)."""
    return (), {"one_of": args}


def command(name: str, help: str, *args: tuple):
    """Registers the function below as the command ``name`` taking ``args`` (see :func:`arg`,
    :func:`one_of`)."""
    def register(func: Callable[[argparse.Namespace], int | None]):
        COMMANDS.append((name, help, func, args))
        return func
    return register


DEVICE = arg("--device", default="auto", choices=["auto", "cpu", "cuda"],
             help="auto: CUDA when there is a GPU")
ENSEMBLE = arg("model_dir", nargs="+", help="a model_dir, or several: an ensemble")
MODEL_DIR = arg("model_dir", help="a trained model's directory (its model_dir)")
QUANTIZE = arg("--quantize", choices=["int8"], help="int8 decoder layers (CPU): faster")
LOAD = (arg("--checkpoint", default="best", choices=["best", "last"],
            help="best/: the best on dev; last/: the latest"), DEVICE)


def decoding(flag: str, what: str, **kwargs: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """A flag for the decoding key of the same name; its default is the model's own setting."""
    from transduce.config import DecodingConfig

    key = flag.lstrip("-").replace("-", "_")
    key = {"sample": "sampling"}.get(key, key)
    default = DecodingConfig.model_fields[key].default
    given = "" if default is None else f", {str(default).lower()} unless its config sets it"
    return arg(flag, **kwargs, help=f"{what} (default: the model's decoding.{key}{given})")


DECODING = (decoding("--beam-size", "hypotheses kept per step; 1: greedy", type=POSITIVE),
            decoding("--batch-size", "inputs decoded together", type=POSITIVE),
            decoding("--max-len", "maximum output tokens (else decoding.max_len_a x input length + "
                     "max_len_b)", type=POSITIVE),
            decoding("--sample", "sample instead of search", action="store_true"),
            decoding("--temperature", "sampling: divides the logits",
                     type=number(float, 0, low_open=True)),
            decoding("--top-k", "sampling: from the k most likely tokens; 0: all",
                     type=number(int, 0)),
            decoding("--top-p", "sampling: from the smallest set of this probability",
                     type=number(float, 0, 1, low_open=True)),
            decoding("--seed", "sampling's seed (else the config's top-level seed)",
                     type=number(int, 0, 2**63 - 1)),
            arg("--set", nargs="+", action="extend", default=[], metavar="decoding.KEY=VALUE",
                help="any decoding setting, e.g. --set decoding.length_penalty=0.6 (keys: "
                     "docs/config.md)"), QUANTIZE, *LOAD)


def version_line() -> str:
    """``transduce 0.1.0 (torch 2.13.0, Python 3.11.2)``, without importing torch."""
    from importlib.metadata import PackageNotFoundError, version

    from transduce import __version__

    try:
        torch = version("torch")
    except PackageNotFoundError:
        torch = "not installed"
    return f"transduce {__version__} (torch {torch}, Python {sys.version.split()[0]})"
