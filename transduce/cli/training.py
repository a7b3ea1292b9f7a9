"""The commands that make models: train, tune, init, average, demo."""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
from pathlib import Path

from transduce.cli.common import POSITIVE, arg, command, number, one_of
from transduce.errors import TransduceError


@command("train", "train a model from a YAML config", arg("config", help="a YAML config"),
         arg("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
             help="override config values, e.g. --set training.lr=3e-4"),
         arg("--overwrite", action="store_true", help="start afresh, ignoring last/"),
         arg("--nproc", type=POSITIVE, default=1,
             help="data-parallel processes on this machine (runs torchrun; one per GPU on CUDA)"),
         arg("--nnodes", metavar="N|MIN:MAX",
             help="machines in the run: this one joins torchrun's c10d rendezvous at "
                  "--rdzv-endpoint (docs/distributed.md)"),
         arg("--rdzv-endpoint", metavar="HOST:PORT",
             help="the rendezvous, the same on every machine (with --nnodes)"),
         arg("--rdzv-id", help="the run's name at the rendezvous, the same on every machine "
                               "(default: from model_dir)"),
         arg("--max-restarts", type=number(int, 0), default=3,
             help="with --nnodes: times this machine starts torchrun again after a failure and "
                  "resumes from last/"))
def cmd_train(args: argparse.Namespace) -> int | None:
    """example: transduce train config.yaml --set training.lr=3e-4 training.max_minutes=60"""
    from transduce.config import load_config
    from transduce.training.trainer import Trainer, TrainingInterrupted

    config = load_config(args.config, args.set)
    if args.nnodes and not re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", args.nnodes):
        raise TransduceError(f"--nnodes {args.nnodes}: give N or MIN:MAX (e.g. 2, or 1:4)")
    if bool(args.nnodes) != bool(args.rdzv_endpoint):
        raise TransduceError("--nnodes and --rdzv-endpoint go together: give both (several "
                             "machines) or neither (this machine)")
    if (args.nproc > 1 or args.nnodes) and "WORLD_SIZE" not in os.environ:  # not under torchrun
        from transduce.training.distributed import Nodes, launch

        nodes = None
        if args.nnodes:  # the rendezvous id: the same on every machine, from the shared model_dir
            run_id = args.rdzv_id or "transduce-" + hashlib.sha1(
                str(Path(config.model_dir).resolve()).encode()).hexdigest()[:12]
            nodes = Nodes(args.nnodes, args.rdzv_endpoint, run_id, args.max_restarts)
        return launch(args.nproc, ["train", args.config, *(["--set", *args.set] if args.set
                                                           else []),
                                   *(["--debug"] if getattr(args, "debug", False) else [])],
                      overwrite=args.overwrite, nodes=nodes)
    try:
        Trainer(config, overwrite=args.overwrite).train()
    except TrainingInterrupted as e:
        if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
            print(f"interrupted: {e}", file=sys.stderr)
        return e.exit_code


@command("tune", "hyper-parameter search over the config's tune.space (Optuna)",
         arg("config", help="a YAML config with a tune: section"),
         arg("--trials", type=POSITIVE, help="finished trials wanted (default: tune.trials)"),
         arg("--minutes", type=number(float, 0, low_open=True),
             help="no trial starts after this (default: tune.minutes)"),
         arg("--jobs", type=POSITIVE, default=1, help="trials at a time (worker processes)"),
         arg("--study-dir", help="default: the config's model_dir"),
         arg("--storage", help="an Optuna storage URL (default: sqlite study.db in --study-dir)"))
def cmd_tune(args: argparse.Namespace) -> int | None:
    """example: transduce tune config.yaml --trials 16 --minutes 30 --jobs 2"""
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


@command("average", "average the weights of kept checkpoints (training.keep_last / keep_best)"
         " into a new model_dir",
         arg("model_dir", help="a model_dir trained with keep_last/keep_best"),
         arg("--last", type=POSITIVE, help="the N most recent kept checkpoints (default 5)"),
         arg("--best", type=POSITIVE, help="the N best by the early-stopping metric"),
         arg("-o", "--output", help="the new model_dir (default: MODEL_DIR-average)"))
def cmd_average(args: argparse.Namespace) -> int | None:
    """example: transduce average runs/es-en --last 5 -o runs/es-en-average"""
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


@command("export", "write a model_dir for deployment: the decoder's linear layers in int8 "
         "(--int8), or a CTranslate2 model (--ctranslate2, model.arch: transformer)",
         arg("model_dir", help="a trained model_dir"),
         arg("output", help="the new model_dir (must not exist, or be empty)"),
         one_of(arg("--int8", action="store_true",
                    help="int8 decoder layers stored as integers: a smaller best/ that loads on "
                         "the CPU without quantizing again"),
                arg("--ctranslate2", action="store_true",
                    help="CTranslate2's model in OUTPUT/ctranslate2/: translate, test, score and "
                         "serve OUTPUT decode with CTranslate2 (pip install ctranslate2)")),
         arg("--quantization", default="float32",
             help="--ctranslate2: the weights' type: float32 (decodes as MODEL_DIR does), int8 "
                  "or int8_float32 (int8 matrices: smaller, faster on the CPU)"),
         arg("--checkpoint", default="best", choices=["best", "last"],
             help="the checkpoint to export"))
def cmd_export(args: argparse.Namespace) -> int | None:
    """example: transduce export --ctranslate2 runs/es-en runs/es-en-ct2   (or --int8)"""
    if args.ctranslate2:
        from transduce.decode.ctranslate2 import export

        out = export(args.model_dir, args.output, args.checkpoint, args.quantization)
        what = f"for CTranslate2 ({args.quantization})"
    else:
        from transduce.checkpoints import write_int8

        if args.quantization != "float32":
            raise TransduceError("--quantization is for --ctranslate2; --int8 is int8 already")
        out = write_int8(args.model_dir, args.output, args.checkpoint)
        what = "in int8"
    print(f"{out}: {args.model_dir}'s {args.checkpoint} {what}; translate with: transduce "
          f"translate {out}")


@command("init", "read a corpus once, print its statistics and write a config for it",
         arg("train", help="the training file prefix: TRAIN.<src> and TRAIN.<tgt>"),
         arg("--src", required=True, help="source language suffix"),
         arg("--tgt", required=True, help="target language suffix"),
         arg("--dev", help="the dev set's prefix (default: carved from the training pairs)"),
         arg("-o", "--output", default="config.yaml", help="the config to write"))
def cmd_init(args: argparse.Namespace) -> int | None:
    """example: transduce init data/train --src es --tgt en -o config.yaml"""
    from transduce.init import write_config

    print(write_config(args.train, args.src, args.tgt, args.dev, Path(args.output)))
    print(f"wrote {args.output}; train with: transduce train {args.output}")


@command("demo", "train and show a small attention model on generated data",
         arg("--minutes", type=number(float, 0, low_open=True), default=2.0,
             help="training time"),
         arg("--model-dir", default="runs/demo", help="where the demo model goes"))
def cmd_demo(args: argparse.Namespace) -> int | None:
    """example: transduce demo --minutes 2"""
    from transduce.demo import run_demo

    return run_demo(minutes=args.minutes, model_dir=args.model_dir)
