"""Peak memory of training on a corpus that mixes 1,000-token lines with short ones.

    python benchmarks/memory.py                 # both scenarios, full size (a few minutes)
    python benchmarks/memory.py --pairs 600 --vocab 2000 --steps 3     # a quick look

The claim (issue 6): with default settings, training on such a corpus stays under 8 GiB of RSS
(Joey NMT was killed at 24 GiB on such data). Scenarios, each in a fresh process:

- ``default``: every setting at its default (bi-LSTM 256 per direction, 512 decoder, MLP attention
  with input feeding, batches of 64 sentences, data.max_src_len/max_tgt_len 100): the 1,000-token
  pairs are skipped with a warning, so the largest batch is 64 pairs of up to 100 tokens.
- ``tokens``: the long pairs kept (max lengths 1,000) under a token budget
  (training.batch_tokens 4000) that counts padding and the source x target attention grid.

To reach the peak within a few updates, each child trains on its epoch's batches in order of
estimated memory, largest first, then validates once on a dev set that also holds long lines.
Reported: peak RSS (VmHWM) of the whole process and RSS before training. Vocabulary: a Zipf
distribution over ``--vocab`` word types, so the output layer is as large as real data makes it.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GIB = 1024 ** 3


def make_corpus(out: Path, pairs: int, long_frac: float, vocab: int, seed: int = 1) -> dict:
    """train/dev files: 60% short (5-30 tokens), 30% medium (60-100), the rest 1,000 tokens."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, vocab + 1)
    p = 1.0 / ranks
    p /= p.sum()

    def line(n: int) -> list[str]:
        return [f"w{i}" for i in rng.choice(vocab, size=n, p=p)]

    def lengths(k: int) -> list[int]:
        n_long = int(round(k * long_frac))
        n_med = int(round(k * 0.3))
        out = [1000] * n_long + list(rng.integers(60, 101, n_med)) + \
            list(rng.integers(5, 31, k - n_long - n_med))
        rng.shuffle(out)
        return out

    out.mkdir(parents=True, exist_ok=True)
    for name, k in (("train", pairs), ("dev", 20)):
        src, tgt = [], []
        for n in lengths(k):
            s = line(int(n))
            src.append(" ".join(s))
            tgt.append(" ".join(reversed(s)))
        (out / f"{name}.src").write_text("\n".join(src) + "\n")
        (out / f"{name}.tgt").write_text("\n".join(tgt) + "\n")
    return {"train": str(out / "train"), "dev": str(out / "dev")}


def scenario_config(name: str, data: dict, model_dir: Path, steps: int) -> dict:
    cfg = {"name": name, "model_dir": str(model_dir), "data": dict(data),
           "training": {"max_steps": steps, "validate_every": 10 ** 6, "log_every": 1},
           # an untrained model never stops by itself: keep the one validation short
           "decoding": {"max_len_a": 0.0, "max_len_b": 20}}
    if name == "tokens":
        cfg["data"].update(max_src_len=1000, max_tgt_len=1000)
        cfg["training"]["batch_tokens"] = 4000
    return cfg


def child(cfg: dict) -> dict:
    """Train ``cfg`` with the largest batches first; report peak RSS."""
    import torch

    from transduce.config import load_config
    from transduce.data.batching import batch_cost
    from transduce.training import trainer as trainer_mod

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    import logging

    handler = logging.StreamHandler(sys.stderr)  # the warnings reach the parent's report
    handler.setLevel(logging.WARNING)
    logging.getLogger("transduce").addHandler(handler)

    def status(key: str) -> int:
        return int(re.search(rf"{key}:\s+(\d+)", Path("/proc/self/status").read_text())
                   .group(1)) * 1024

    trainer = trainer_mod.Trainer(load_config(cfg), overwrite=True)
    by_epoch = trainer._epoch_batches

    def estimate(b) -> float:  # tokens plus attention grid, in token units (summed)
        s, t = int(trainer.data.src_lens[b].max()), int(trainer.data.tgt_lens[b].max()) + 1
        return len(b) * max(s, t) + batch_cost(len(b), s, t, trainer.att_cost)

    def worst_first(epoch: int):
        return sorted(by_epoch(epoch), key=estimate, reverse=True)

    trainer._epoch_batches = worst_first
    worst = worst_first(0)[0]
    largest = (len(worst), int(trainer.data.src_lens[worst].max()), int(trainer.data.tgt_lens[worst].max()))
    rss_before = status("VmRSS")
    tic = time.time()
    trainer.train()
    return {"pairs_kept": len(trainer.data.src), "tgt_vocab": len(trainer.tgt.vocab),
            "params": trainer.n_params, "largest_batch": largest,
            "rss_before_gib": rss_before / GIB, "peak_rss_gib": status("VmHWM") / GIB,
            "seconds": time.time() - tic}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=4000)
    ap.add_argument("--long-frac", type=float, default=0.1)
    ap.add_argument("--vocab", type=int, default=50000)
    ap.add_argument("--steps", type=int, default=4, help="updates per scenario")
    ap.add_argument("--scenarios", default="default,tokens")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    print("uptime before:", os.popen("uptime").read().strip())
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = make_corpus(Path(tmp) / "data", args.pairs, args.long_frac, args.vocab)
        for name in args.scenarios.split(","):
            cfg = scenario_config(name, data, Path(tmp) / name, args.steps)
            r = subprocess.run([sys.executable, __file__, "--child", json.dumps(cfg)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print(r.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"scenario {name} failed")
            results[name] = json.loads(r.stdout.strip().splitlines()[-1])
            warn = [ln for ln in r.stderr.splitlines() if "skipped" in ln or "exceed" in ln]
            results[name]["warnings"] = warn
    print("uptime after: ", os.popen("uptime").read().strip())
    print(f"\ncorpus: {args.pairs} pairs ({args.long_frac:.0%} of 1,000 tokens, 30% of 60-100, "
          f"the rest 5-30), Zipf vocabulary of {args.vocab} types; {args.steps} updates, "
          "largest batches first\n")
    print(f"{'scenario':10s} {'pairs kept':>10s} {'tgt vocab':>9s} {'largest batch':>20s} "
          f"{'RSS before':>10s} {'peak RSS':>9s} {'time':>6s}")
    for name, r in results.items():
        n, s, t = r["largest_batch"]
        print(f"{name:10s} {r['pairs_kept']:10d} {r['tgt_vocab']:9d} {f'{n} x {s} / {t} tok':>20s}"
              f" {r['rss_before_gib']:8.2f} G {r['peak_rss_gib']:7.2f} G {r['seconds']:5.0f}s")
        for w in r["warnings"]:
            print(f"    {w}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
