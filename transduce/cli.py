"""The ``transduce`` command line: argument parsing only (each command is a function, registered
with its arguments by :func:`command`); the work is done by the API modules."""
from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
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


class _Closed:
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


def _setup_logging(debug: bool) -> None:
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if debug else logging.INFO)
    log.propagate = False


@contextmanager
def _startup() -> Iterator[None]:
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


def _load(args: argparse.Namespace):
    """The model of ``args.model_dir`` (torch imported and the model loaded in :func:`_startup`)."""
    with _startup():
        from transduce.api import load

        dirs = args.model_dir if isinstance(args.model_dir, list) else [args.model_dir]
        return load(dirs[0] if len(dirs) == 1 else dirs, args.checkpoint, args.device,
                    getattr(args, "quantize", None))


def _read_input(path: str | None) -> list[str]:
    """Lines of a file or stdin; invalid UTF-8 is reported with its line number."""
    from transduce.data.corpus import read_lines, split_lines

    if path and path != "-":
        return read_lines(path)
    return split_lines(sys.stdin.buffer.read(), "<stdin>", "convert the input to UTF-8")


def _write_output(lines: list[str], path: str | None) -> None:
    text = "".join(line + "\n" for line in lines)
    if path and path != "-":
        try:
            Path(path).write_text(text, encoding="utf-8")
        except OSError as e:
            raise TransduceError(f"{path}: cannot write the output ({e.strerror}); check the "
                                 "path and its permissions") from None
    else:
        print(text, end="", flush=True)


def _nothing_to_score(refs: list, *paths: str) -> None:
    if not refs:
        raise TransduceError(f"{' and '.join(paths)}: the files are empty, there is nothing to "
                             "score; check the paths")


def _decode_options(args: argparse.Namespace) -> dict:
    """The decoding flags and ``--set decoding.KEY=VALUE`` as DecodingConfig overrides (None: the
    model's config decides; a flag wins over --set)."""
    from transduce.config import parse_set

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


def _print_scores(hyps: list[str], refs: list[list[str]], args: argparse.Namespace) -> None:
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


class _Parser(argparse.ArgumentParser):
    """argparse with transduce's error format: one line, ``error: ...``, exit status 2."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.prog != "transduce":  # subcommands also take --debug after their name
            self.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                              help="show tracebacks")

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def _number(kind: type, low: float | None = None, high: float | None = None,
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


POSITIVE = _number(int, 1)
COMMANDS: list[tuple[str, str, Callable[[argparse.Namespace], int | None], tuple]] = []


def arg(*flags: str, **kwargs: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """One argument of a command: the parameters of ``ArgumentParser.add_argument``."""
    return flags, kwargs


def command(name: str, help: str, *args: tuple):
    """Registers the function below as the command ``name`` taking ``args`` (see :func:`arg`)."""
    def register(func: Callable[[argparse.Namespace], int | None]):
        COMMANDS.append((name, help, func, args))
        return func
    return register


DEVICE = arg("--device", default="auto", choices=["auto", "cpu", "cuda"])
ENSEMBLE = arg("model_dir", nargs="+", help="a model_dir, or several: an ensemble")
QUANTIZE = arg("--quantize", choices=["int8"], help="int8 decoder layers (CPU): faster")
LOAD = (arg("--checkpoint", default="best", choices=["best", "last"]), DEVICE)
DECODING = (arg("--beam-size", type=POSITIVE), arg("--batch-size", type=POSITIVE),
            arg("--max-len", type=POSITIVE, help="maximum output tokens"),
            arg("--sample", action="store_true", help="sample instead of search"),
            arg("--temperature", type=_number(float, 0, low_open=True)),
            arg("--top-k", type=_number(int, 0)),
            arg("--top-p", type=_number(float, 0, 1, low_open=True)),
            arg("--seed", type=_number(int, 0, 2**63 - 1)),
            arg("--set", nargs="+", action="extend", default=[], metavar="decoding.KEY=VALUE",
                help="any decoding setting, e.g. --set decoding.length_penalty=0.6"), QUANTIZE,
            *LOAD)


def _version() -> str:
    """``transduce 0.1.0 (torch 2.13.0, Python 3.11.2)``, without importing torch."""
    from importlib.metadata import PackageNotFoundError, version

    from transduce import __version__

    try:
        torch = version("torch")
    except PackageNotFoundError:
        torch = "not installed"
    return f"transduce {__version__} (torch {torch}, Python {sys.version.split()[0]})"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="transduce",
                description="transduce: train, decode and score sequence-to-sequence models")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", required=True)
    for name, help, func, args in COMMANDS:
        sp = sub.add_parser(name, help=help)
        for flags, kwargs in args:
            sp.add_argument(*flags, **kwargs)
        sp.set_defaults(func=func)
    return p


@command("train", "train a model from a YAML config", arg("config"),
         arg("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
             help="override config values, e.g. --set training.lr=3e-4"),
         arg("--overwrite", action="store_true", help="start afresh, ignoring last/"),
         arg("--nproc", type=POSITIVE, default=1,
             help="data-parallel processes on this machine (runs torchrun; one per GPU on CUDA)"))
def cmd_train(args: argparse.Namespace) -> int | None:
    from transduce.config import load_config
    from transduce.training.trainer import Trainer, TrainingInterrupted

    config = load_config(args.config, args.set)
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:  # not yet under torchrun
        from transduce.training.distributed import launch

        return launch(args.nproc, ["train", args.config, *(["--set", *args.set] if args.set
                                                           else []),
                                   *(["--overwrite"] if args.overwrite else []),
                                   *(["--debug"] if getattr(args, "debug", False) else [])])
    try:
        Trainer(config, overwrite=args.overwrite).train()
    except TrainingInterrupted as e:
        if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
            print(f"interrupted: {e}", file=sys.stderr)
        return e.exit_code


@command("tune", "hyper-parameter search over the config's tune.space (Optuna)", arg("config"),
         arg("--trials", type=POSITIVE, help="finished trials wanted (default: tune.trials)"),
         arg("--minutes", type=_number(float, 0, low_open=True),
             help="no trial starts after this (default: tune.minutes)"),
         arg("--jobs", type=POSITIVE, default=1, help="trials at a time (worker processes)"),
         arg("--study-dir", help="default: the config's model_dir"),
         arg("--storage", help="an Optuna storage URL (default: sqlite study.db in --study-dir)"))
def cmd_tune(args: argparse.Namespace) -> int | None:
    from rich.console import Console

    from transduce.api import tune
    from transduce.training.progress import TrainingInterrupted

    try:
        summary = tune(args.config, args.trials, args.minutes, args.jobs, args.study_dir,
                       args.storage)
    except TrainingInterrupted as e:  # the trial saved last/; a rerun resumes it
        print(f"interrupted: {e}", file=sys.stderr)
        return e.exit_code
    Console(width=None if sys.stdout.isatty() else 160).print(summary.table())
    print(f"best: {summary.best_model_dir} -> {summary.best_config}" if summary.best else
          "no trial completed: no best.yaml")


@command("translate", "decode stdin (or -i FILE), one output line per line", ENSEMBLE,
         arg("-i", "--input"), arg("-o", "--output"), arg("--n-best", type=POSITIVE),
         arg("--prefix", help="every output starts with this target text, then goes on freely"),
         *DECODING)
def cmd_translate(args: argparse.Namespace) -> int | None:
    model = _load(args)
    lines = _image_paths(model, _read_input(args.input), args.input)
    options = _decode_options(args)
    n_best = model.config.decoding.override(**options).n_best
    out = []
    for res in model.search(lines, prefix=args.prefix, **options):
        if n_best > 1:
            res = res + [None] * (n_best - len(res))
            out.extend(f"{r.text}\t{r.score:.4f}" if r else "\t0.0000" for r in res)
        else:
            out.append(res[0].text if res else "")
    _write_output(out, args.output)


def _image_paths(model, lines: list[str], list_file: str | None) -> list[str]:
    """An image model's input lines are image paths relative to their list file (from stdin:
    to the current directory); a text model's stay as they are."""
    from transduce.data.corpus import relative_to

    return relative_to(lines, list_file) if model.model.images and list_file not in (None, "-") \
        else lines


@command("caption", "print one caption per image, in order (a model trained on images)",
         arg("model_dir"), arg("images", nargs="+", metavar="IMAGE"), *DECODING)
def cmd_caption(args: argparse.Namespace) -> int | None:
    model = _load(args)
    if not model.model.images:
        raise TransduceError(f"{args.model_dir}: this model reads text (data.src_type: text), "
                             "not images; use transduce translate")
    _write_output(model.translate(args.images, **_decode_options(args)), None)


REFS = arg("--ref", required=True, nargs="+", metavar="REF",
           help="reference file; several for several references per line (an empty line of "
                "a further file: no reference there)")


@command("evaluate", "score hypotheses against references", arg("--hyp", required=True),
         REFS, arg("--metrics", default="bleu,chrf,rouge"), arg("--json", action="store_true"))
def cmd_evaluate(args: argparse.Namespace) -> int | None:
    from transduce.data.corpus import read_lines
    from transduce.evaluate import read_references

    hyps, refs = read_lines(args.hyp), read_references(args.ref)
    if len(hyps) != len(refs):
        raise TransduceError(f"{args.hyp}: {len(hyps)} lines but {args.ref[0]} has {len(refs)}; "
                             "hypotheses and references must be line-aligned")
    _nothing_to_score(refs, args.hyp, args.ref[0])
    _print_scores(hyps, refs, args)


@command("test", "translate a test set and score it", ENSEMBLE,
         arg("--src", required=True), REFS,
         arg("-o", "--output", help="also write the translations here"),
         arg("--metrics", help="default: bleu,chrf (an image model: bleu,chrf,cider)"),
         arg("--json", action="store_true"), *DECODING)
def cmd_test(args: argparse.Namespace) -> int | None:
    from transduce.data.corpus import read_parallel
    from transduce.evaluate import read_references

    src, _ = read_parallel(args.src, args.ref[0])
    refs = read_references(args.ref)
    _nothing_to_score(refs, args.src, args.ref[0])
    model = _load(args)
    hyps = model.translate(_image_paths(model, src, args.src), **_decode_options(args))
    if args.output:
        _write_output(hyps, args.output)
    args.metrics = args.metrics or ("bleu,chrf,cider" if model.model.images else "bleu,chrf")
    _print_scores(hyps, refs, args)


@command("score", "forced decoding: each reference's log-probability given its source, and "
         "that per token (tab-separated, one line per pair)", arg("model_dir"),
         arg("--src", required=True), arg("--ref", required=True), arg("-o", "--output"), *LOAD)
def cmd_score(args: argparse.Namespace) -> int | None:
    from transduce.data.corpus import read_parallel

    src, refs = read_parallel(args.src, args.ref)
    model = _load(args)
    _write_output([f"{lp:.4f}\t{per_token:.4f}" for lp, per_token in model.score(src, refs)],
                  args.output)


@command("average", "average the weights of kept checkpoints (training.keep_last / keep_best)"
         " into a new model_dir", arg("model_dir"),
         arg("--last", type=POSITIVE, help="the N most recent kept checkpoints (default 5)"),
         arg("--best", type=POSITIVE, help="the N best by the early-stopping metric"),
         arg("-o", "--output", help="the new model_dir (default: MODEL_DIR-average)"))
def cmd_average(args: argparse.Namespace) -> int | None:
    from transduce.checkpoints import select, write_average
    from transduce.config import load_config
    from transduce.model_dir import CONFIG

    if args.last and args.best:
        raise TransduceError("--last and --best: choose one")
    metric = load_config(Path(args.model_dir) / CONFIG).training.early_stopping_metric
    paths = select(Path(args.model_dir), last=None if args.best else args.last or 5,
                   best=args.best, metric=metric)
    out = write_average(args.model_dir, args.output or f"{args.model_dir.rstrip('/')}-average",
                        paths)
    print(f"{out}: the average of {', '.join(p.name for p in paths)}")


@command("init", "read a corpus once, print its statistics and write a config for it",
         arg("train", help="the training file prefix: TRAIN.<src> and TRAIN.<tgt>"),
         arg("--src", required=True, help="source language suffix"),
         arg("--tgt", required=True, help="target language suffix"),
         arg("--dev", help="the dev set's prefix (default: carved from the training pairs)"),
         arg("-o", "--output", default="config.yaml"))
def cmd_init(args: argparse.Namespace) -> int | None:
    from transduce.init import write_config

    print(write_config(args.train, args.src, args.tgt, args.dev, Path(args.output)))
    print(f"wrote {args.output}; train with: transduce train {args.output}")


@command("demo", "train and show a small attention model on generated data",
         arg("--minutes", type=_number(float, 0, low_open=True), default=2.0),
         arg("--model-dir", default="runs/demo"))
def cmd_demo(args: argparse.Namespace) -> int | None:
    from transduce.demo import run_demo

    return run_demo(minutes=args.minutes, model_dir=args.model_dir)


@command("plot", "attention heatmap of one input (an image model: the image under each word's "
         "attention)", arg("model_dir"), arg("text", help="the input (an image model: its path)"),
         arg("-o", "--output", default="attention.png"), arg("--beam-size", type=POSITIVE), *LOAD)
def cmd_plot(args: argparse.Namespace) -> int | None:
    from matplotlib.backend_bases import FigureCanvasBase

    out, formats = Path(args.output), FigureCanvasBase.get_supported_filetypes()
    if out.suffix and out.suffix[1:].lower() not in formats:
        raise TransduceError(f"{out}: unknown image format {out.suffix!r}; use one of "
                             + ", ".join("." + f for f in sorted(formats)))
    if not out.parent.is_dir():
        raise TransduceError(f"{out}: cannot write the plot (no directory {out.parent}); check "
                             "the path")
    model = _load(args)
    from transduce.plot import plot_attention
    if model.config.model.attention == "none":
        raise TransduceError(f"{args.model_dir}: the model has no attention to plot "
                             "(model.attention: none)")
    if not args.text.strip():
        raise TransduceError("the text to plot is empty")
    res = model.search([args.text], beam_size=args.beam_size, attention=True)[0][0]
    try:
        if model.model.images:  # Show, Attend and Tell's figure
            from transduce.data.images import load_image
            from transduce.plot import image_attention_figure, save_figure

            image = load_image(args.text, model.config.data.image_size).transpose(1, 2, 0)
            save_figure(image_attention_figure(image, res.attention, res.tgt_tokens,
                                               res.text[:80]), out)
        else:
            plot_attention(res.attention, res.src_tokens, res.tgt_tokens, out,
                           title=res.text[:80], copy=res.copy)
    except OSError as e:
        raise TransduceError(f"{out}: cannot write the plot ({e.strerror}); check the path and "
                             "its permissions") from None
    print(res.text)
    log.info("attention plot written to %s", args.output)


@command("serve", "HTTP API and web page with attention heatmaps", arg("model_dir"),
         arg("--host", default="127.0.0.1", help="the address to listen on (default: this machine "
             "only; any other needs a token, or warns)"),
         arg("--port", type=_number(int, 1, 65535), default=8000), DEVICE, QUANTIZE,
         arg("--threads", type=POSITIVE, help="torch threads"),
         arg("--max-batch-size", type=POSITIVE, default=64,
             help="sentences decoded together across concurrent requests"),
         arg("--max-wait-ms", type=_number(float, 0, 60_000), default=5.0,
             help="how long a request may wait for others to batch with"),
         arg("--no-batching", action="store_true", help="decode each request alone"),
         arg("--max-inputs", type=POSITIVE, default=32, help="inputs per request"),
         arg("--max-chars", type=POSITIVE, default=1000, help="characters per input"),
         arg("--allow-host", action="append", default=[], metavar="NAME",
             help="a name clients reach the server by (their Host header), besides its --host, "
                  "localhost and IP addresses; repeatable; '*': any"),
         arg("--token", help="require 'Authorization: Bearer TOKEN' (default: $TRANSDUCE_TOKEN; "
                             "the environment keeps it out of the process list)"))
def cmd_serve(args: argparse.Namespace) -> int | None:
    from transduce.serve.app import serve

    serve(args.model_dir, host=args.host, port=args.port, device=args.device,
          quantize=args.quantize, threads=args.threads, max_batch_size=args.max_batch_size,
          max_wait_ms=args.max_wait_ms, batching=not args.no_batching,
          max_inputs=args.max_inputs, max_chars=args.max_chars, allow_hosts=args.allow_host,
          token=args.token)


@command("chat", "reply to each input line (interactive or piped)", arg("model_dir"), *DECODING)
def cmd_chat(args: argparse.Namespace) -> int | None:
    """Read a message per line (a terminal prompt, or piped input), print a reply per line."""
    model = _load(args)
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            print("> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:
            return 0
        reply = model.translate([line.strip()], **_decode_options(args))[0] if line.strip() else ""
        print(reply, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.debug)
    sys.stdin = sys.stdin or _Closed("stdin", "give the input with -i FILE, or pipe it in")
    sys.stdout = sys.stdout or _Closed("stdout", "write the output with -o FILE, or redirect it")
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
