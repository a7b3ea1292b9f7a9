"""Peak memory and start-up time of training against the corpus size (issue #19).

    nice python benchmarks/corpus_size.py                        # 0.1 M, 1 M, 10 M pairs
    python benchmarks/corpus_size.py --sizes 20000,200000 --steps 20      # a quick look
    python benchmarks/corpus_size.py --sizes 100000,1000000 --code /tmp/old --label before

For each size a generated corpus is written straight to files (a made-up translation task:
3-30 words of a 2,000-word source vocabulary, the target the words mapped to another 2,000
words, in reverse order), then ``transduce train CONFIG`` runs twice, each time in a fresh
process and a new model_dir: the first run builds the training-data cache
(``data/training_set.py``), the rerun finds it. Each run: a small model (embeddings 32, bi-LSTM
32 per direction, decoder 64), word tokenizer, every other setting at its default (``copy:
auto`` too), ``--steps`` updates of 64 sentences, one thread. Measured from outside: peak RSS
(the child's ``ru_maxrss`` from ``wait4``, file-backed pages included) and start-up time, from
launch to the first update's record in metrics.jsonl (polled every 20 ms). ``--code DIR`` runs
another checkout (the code before the cache: it holds every corpus in memory, so keep its sizes
small).

Goals (issue #19): peak RSS at 10 M within 1.5 x the 0.1 M run's; rerun start-up under 10 s at
10 M. The generated data and caches are kept in ``--work`` (delete it afterwards).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHUNK = 100_000  # pairs generated at a time
MB = 1e6


def write_corpus(prefix: Path, pairs: int, vocab: int = 2000, seed: int = 1) -> None:
    """``prefix``.src/.tgt: ``pairs`` lines each, written a chunk at a time."""
    if Path(f"{prefix}.tgt").is_file():
        return
    prefix.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    src_words = np.array([f"w{i}" for i in range(vocab)])
    tgt_words = np.array([f"v{i}" for i in rng.permutation(vocab)])  # w_i -> v_perm(i)
    with open(f"{prefix}.src", "w") as fs, open(f"{prefix}.tgt.tmp", "w") as ft:
        for start in range(0, pairs, CHUNK):
            n = min(CHUNK, pairs - start)
            lens = rng.integers(3, 31, n)
            ids = np.split(rng.integers(0, vocab, int(lens.sum())), np.cumsum(lens)[:-1])
            fs.write("".join(" ".join(src_words[s]) + "\n" for s in ids))
            ft.write("".join(" ".join(tgt_words[s[::-1]]) + "\n" for s in ids))
    os.rename(f"{prefix}.tgt.tmp", f"{prefix}.tgt")


def config(work: Path, pairs: int, steps: int) -> Path:
    path = work / f"config-{pairs}.json"  # JSON is YAML
    path.write_text(json.dumps({
        "name": f"corpus-{pairs}", "seed": 1, "model_dir": str(work / f"run-{pairs}"),
        "data": {"train": str(work / f"data-{pairs}" / "train"), "dev": str(work / "dev" / "dev"),
                 "tokenizer": "word"},
        "model": {"embedding_size": 32, "encoder_hidden_size": 32, "decoder_hidden_size": 64},
        "training": {"batch_size": 64, "max_steps": steps, "validate_every": steps,
                     "log_every": 1, "threads": 1},
        "decoding": {"beam_size": 1, "max_len_a": 0.0, "max_len_b": 40}}))
    return path


def run(cfg: Path, code: Path) -> dict:
    """``transduce train cfg`` in a child, in a new model_dir: peak RSS, start-up, total
    time."""
    model_dir = Path(json.loads(cfg.read_text())["model_dir"])
    metrics = model_dir / "metrics.jsonl"
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    shutil.rmtree(model_dir, ignore_errors=True)  # a new run (its metrics.jsonl is polled)
    err_file = cfg.with_suffix(".log")
    tic = time.perf_counter()
    with open(err_file, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "transduce", "train", str(cfg)], env=env,
                                cwd=code, stdout=subprocess.DEVNULL, stderr=err)  # -m: cwd first
    first, status, usage = None, None, None
    while status is None:
        pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            status, usage = st, ru
        elif first is None and metrics.is_file() and '"event": "train"' in metrics.read_text():
            first = time.perf_counter() - tic
        time.sleep(0.02)
    total = time.perf_counter() - tic
    err = err_file.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"training failed:\n{err[-3000:]}")
    return {"startup_s": first, "total_s": total, "peak_rss_mb": usage.ru_maxrss * 1024 / MB,
            "log": [ln for ln in err.splitlines() if "data cache:" in ln]}


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100000,1000000,10000000")
    ap.add_argument("--steps", type=int, default=300, help="updates per run")
    ap.add_argument("--work", type=Path, default=Path("/tmp/transduce-corpus-size"))
    ap.add_argument("--code", type=Path, default=Path(__file__).resolve().parents[1],
                    help="the checkout to run (PYTHONPATH)")
    ap.add_argument("--label", default="cache")
    ap.add_argument("--runs", type=int, default=2, help="runs per size (the first builds)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    print("uptime before:", os.popen("uptime").read().strip(), flush=True)
    write_corpus(args.work / "dev" / "dev", 200, seed=2)
    results = []
    for pairs in map(int, args.sizes.split(",")):
        data = args.work / f"data-{pairs}"
        tic = time.perf_counter()
        write_corpus(data / "train", pairs)
        print(f"{pairs:,} pairs: data ready in {time.perf_counter() - tic:.0f} s", flush=True)
        cfg = config(args.work, pairs, args.steps)
        for i in range(args.runs):
            r = run(cfg, args.code)
            r.update(pairs=pairs, run=i + 1, text_mb=(du(data) - du(data / "transduce-cache"))
                     / MB, cache_mb=du(data / "transduce-cache") / MB)
            results.append(r)
            print(f"  run {i + 1}: start-up {r['startup_s']:.1f} s, peak RSS "
                  f"{r['peak_rss_mb']:.0f} MB, total {r['total_s']:.0f} s; " +
                  " | ".join(r["log"]), flush=True)
    print("uptime after: ", os.popen("uptime").read().strip())
    base = {r["run"]: r["peak_rss_mb"] for r in results if r["pairs"] == results[0]["pairs"]}
    print(f"\n{args.label}: {args.steps} updates of 64 sentences, word tokenizer, small model, "
          "one thread")
    print(f"| pairs | text | cache | run | start-up | peak RSS | RSS / {results[0]['pairs']:,}'s "
          "| total |")
    print("|---:|---:|---:|---|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['pairs']:,} | {r['text_mb']:,.0f} MB | {r['cache_mb']:,.0f} MB | "
              f"{'first' if r['run'] == 1 else 'rerun'} | {r['startup_s']:.1f} s | "
              f"{r['peak_rss_mb']:,.0f} MB | {r['peak_rss_mb'] / base[r['run']]:.2f} | "
              f"{r['total_s']:.0f} s |")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "results": results}, indent=1))


if __name__ == "__main__":
    main()
