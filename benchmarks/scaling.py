#!/usr/bin/env python3
"""transduce training speed and peak memory against batch size and sequence length.

The benchmark model of ``peers.py`` (embeddings 256, bi-LSTM 256 per direction, LSTM 512 decoder,
MLP attention, input feeding, dropout 0.1, Adam; built by ``profile_step.py``) on reversal pairs
(vocabulary 100). Each point
runs in its own process so that its peak RSS is its own: a few warm-up steps, then timed steps.

- batch sweep: 16-256 sentences per batch, lengths 1-25;
- length sweep: every sentence exactly L symbols, L = 10-200, with a token budget of 1,600 target
  tokens per batch (1600 // L sentences: the MLP attention grid grows with L squared).

    .venv/bin/python benchmarks/scaling.py                    # both sweeps
    .venv/bin/python benchmarks/scaling.py --threads 1 --steps 5

Prints a table and writes ``benchmarks/results/scaling-<date>.{json,png}``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results"
BATCHES = [16, 32, 64, 128, 256]
LENGTHS = [10, 25, 50, 100, 200]
LENGTH_BUDGET = 1600  # target tokens per batch in the length sweep


def point(batch: int, length: int | None, steps: int, threads: int | None) -> dict:
    """One measurement, in this process: target tok/s over ``steps`` timed updates (no gradient
    clipping)."""
    import random

    import torch

    from profile_step import batch as make_batch, benchmark_model, train_step

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(1)
    rng = random.Random(1)
    model, opt = benchmark_model()
    warmup = 2
    data = [make_batch(rng, batch, length=length) for _ in range(steps + warmup)]
    tic = 0.0
    for i, b in enumerate(data):
        if i == warmup:
            tic = time.perf_counter()
        train_step(model, opt, b, clip=None)
    seconds = time.perf_counter() - tic
    tokens = sum(b.n_tgt_tokens for b in data[warmup:])
    return {"batch": batch, "length": length or "1-25", "tgt_tok_s": tokens / seconds,
            "step_s": seconds / steps,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measure(batch: int, length: int | None, steps: int, threads: int | None) -> dict:
    cmd = [sys.executable, __file__, "--point", str(batch), str(length or 0), "--steps",
           str(steps)] + (["--threads", str(threads)] if threads else [])
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, xlabel in ((axes[0], "batch", "sentences per batch (lengths 1-25)"),
                            (axes[1], "length", f"sequence length ({LENGTH_BUDGET} tokens/batch)")):
        rows = results[key]
        xs = [r[key] for r in rows]
        ax.plot(xs, [r["tgt_tok_s"] for r in rows], "o-", color="tab:blue")
        ax.set_xscale("log", base=2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("target tok/s", color="tab:blue")
        twin = ax.twinx()
        twin.plot(xs, [r["peak_rss_mib"] for r in rows], "s--", color="tab:red")
        twin.set_ylabel("peak RSS (MiB)", color="tab:red")
    fig.suptitle("transduce training: speed and memory (benchmark model, fp32, CPU)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=8, help="timed updates per point")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--point", nargs=2, type=int, metavar=("BATCH", "LENGTH"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.point:
        print(json.dumps(point(a.point[0], a.point[1] or None, a.steps, a.threads)))
        return
    results = {"batch": [], "length": [], "threads": a.threads, "steps": a.steps,
               "date": dt.datetime.now().isoformat(timespec="seconds")}
    print(f"{'sweep':<7} {'batch':>5} {'length':>6} {'tgt tok/s':>10} {'s/step':>7} "
          f"{'peak RSS MiB':>12}")
    for key, points in (("batch", [(b, None) for b in BATCHES]),
                        ("length", [(LENGTH_BUDGET // n, n) for n in LENGTHS])):
        for batch, length in points:
            r = measure(batch, length, a.steps, a.threads)
            results[key].append(r)
            print(f"{key:<7} {r['batch']:>5} {str(r['length']):>6} {r['tgt_tok_s']:>10,.0f} "
                  f"{r['step_s']:>7.2f} {r['peak_rss_mib']:>12,.0f}", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    stem = OUT / f"scaling-{dt.date.today().isoformat()}"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    plot(results, stem.with_suffix(".png"))
    print(f"written to {stem}.json and {stem}.png")


if __name__ == "__main__":
    main()
