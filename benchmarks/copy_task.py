#!/usr/bin/env python3
"""Issue #15, acceptance 2: a generated task whose answers are made-up words copied from the
source ("rename X to Y" -> "Y", data/generate.py) trained with ``model.copy`` and every other
setting at its default, for ``--seconds`` of training (default 90). Prints exact match on the
held-out test split, updates and the run's own figures.

    .venv/bin/python benchmarks/copy_task.py                  # copy: true, 90 s
    .venv/bin/python benchmarks/copy_task.py --copy auto      # what model.copy: auto decides
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from transduce.api import train
from transduce.data.generate import write_task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=90.0)
    ap.add_argument("--copy", default="true", help="model.copy: true, false (or auto)")
    ap.add_argument("--train", type=int, default=20000, help="training pairs")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        data = write_task("rename", Path(work) / "data", {"train": args.train, "dev": 500,
                                                          "test": 1000})
        copy = {"true": True, "false": False}.get(args.copy, args.copy)
        cfg = {"model_dir": f"{work}/model",
               "data": {"train": f"{data}/train", "dev": f"{data}/dev"},
               "model": {"copy": copy},
               "training": {"max_minutes": args.seconds / 60}}
        tic = time.time()
        model = train(cfg)
        wall = time.time() - tic
        src = (data / "test.src").read_text().splitlines()
        ref = (data / "test.tgt").read_text().splitlines()
        hyps = model.translate(src)
        exact = 100.0 * sum(h == r for h, r in zip(hyps, ref)) / len(ref)
        rows = [json.loads(x) for x in (Path(work) / "model/metrics.jsonl").read_text().split("\n")
                if x]
        steps = max((r.get("step", 0) for r in rows), default=0)
    print(f"rename task, model.copy={args.copy}, {args.seconds:.0f} s of training: exact match "
          f"{exact:.1f} % on {len(ref)} test pairs, {steps} updates, {wall:.0f} s wall in all")
    for s, h, r in list(zip(src, hyps, ref))[:5]:
        print(f"  {s!r} -> {h!r}" + ("" if h == r else f" (want {r!r})"))


if __name__ == "__main__":
    main()
