#!/usr/bin/env python3
"""A/B two source trees of transduce: training speed, beam-5 decoding speed, and whether a
fixed-seed training run gives byte-identical weights and outputs.

For a refactoring: run the commit before it and the working tree side by side, in alternating
rounds, on a quiet machine (nothing else running). Each round trains the demo model (dates task,
char tokens, LSTM + MLP attention, seed 1) for ``--steps`` updates without validation, hashes the
final weights, then beam-5 decodes the 500 test dates, timed, and hashes the output.

    git worktree add /tmp/base 2c86701
    .venv/bin/python benchmarks/ab.py /tmp/base . --rounds 3

Only the public Python API (``transduce.api``, ``transduce.demo.demo_config``,
``transduce.data.generate.write_task``) is used, so trees of different layouts compare.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

WORKER = r"""
import hashlib, json, sys, time
from pathlib import Path
import transduce
assert Path(transduce.__file__).resolve().is_relative_to(Path(sys.argv[4])), transduce.__file__
from transduce.api import train
from transduce.data.generate import write_task
from transduce.demo import demo_config

work, steps, threads = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
data = write_task("dates", work / "data", {"train": 40000, "dev": 300, "test": 500})
cfg = demo_config(str(work), 600.0)
cfg["training"].update(max_steps=steps, validate_every=10 * steps, threads=threads)
cfg["data"]["test"] = None
tic = time.perf_counter()
model = train(cfg, overwrite=True)
train_s = time.perf_counter() - tic
weights = hashlib.sha256((work / "last" / "model.safetensors").read_bytes()).hexdigest()[:16]
src = (data / "test.src").read_text().splitlines()
model.translate(src[:20], beam_size=5)  # warm-up
tic = time.perf_counter()
hyps = model.translate(src * 4, beam_size=5)
decode_s = time.perf_counter() - tic
print(json.dumps({"train_s": train_s, "sent_per_s": 4 * len(src) / decode_s, "weights": weights,
                  "outputs": hashlib.sha256("\n".join(hyps).encode()).hexdigest()[:16]}))
"""


def run(tree: Path, steps: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as work:
        env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
        # cwd=work: with ``-c`` the current directory comes first on sys.path
        out = subprocess.run([sys.executable, "-c", WORKER, work, str(steps), str(threads),
                              str(tree.resolve())], env=env, cwd=work,
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, help="source tree A (e.g. a worktree of the old commit)")
    ap.add_argument("b", type=Path, help="source tree B (e.g. .)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    res: dict[str, list[dict]] = {"A": [], "B": []}
    for k in range(args.rounds):
        order = ("A", "B") if k % 2 == 0 else ("B", "A")  # alternate who runs first
        for name in order:
            r = run(args.a if name == "A" else args.b, args.steps, args.threads)
            res[name].append(r)
            print(f"round {k + 1} {name}: train {r['train_s']:.1f} s, beam-5 "
                  f"{r['sent_per_s']:.1f} sent/s, weights {r['weights']}, outputs {r['outputs']}",
                  flush=True)
    print(f"\n{args.steps} updates, {args.threads} thread(s), medians of {args.rounds} rounds")
    print(f"{'':4s} {'train s':>8s} {'beam-5 sent/s':>14s}  weights           outputs")
    for name in ("A", "B"):
        rs = res[name]
        print(f"{name:4s} {statistics.median(r['train_s'] for r in rs):8.1f} "
              f"{statistics.median(r['sent_per_s'] for r in rs):14.1f}  "
              f"{','.join(sorted({r['weights'] for r in rs}))}  "
              f"{','.join(sorted({r['outputs'] for r in rs}))}")
    ratio = [b["train_s"] / a["train_s"] for a, b in zip(res["A"], res["B"])]
    dec = [b["sent_per_s"] / a["sent_per_s"] for a, b in zip(res["A"], res["B"])]
    print(f"B/A training time per round: {', '.join(f'{x:.3f}' for x in ratio)}; "
          f"beam-5 speed: {', '.join(f'{x:.3f}' for x in dec)}")
    for what in ("weights", "outputs"):
        same = len({r[what] for r in res["A"] + res["B"]}) == 1
        print(f"final {what}: " + ("byte-identical in A and B" if same else "DIFFER"))


if __name__ == "__main__":
    main()
