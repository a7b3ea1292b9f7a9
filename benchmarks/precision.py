#!/usr/bin/env python3
"""fp32 vs bf16 training on CPU: speed and quality after the same wall-clock budget.

    taskset -c 1 python benchmarks/precision.py                  # 2 min each, then decode
    taskset -c 1 python benchmarks/precision.py --minutes 10 --profile-steps 20

Trains the benchmark model (reversal task: 100 symbols, lengths 1-25; embeddings 256, bi-LSTM
256 per direction, LSTM decoder 512, MLP attention, input feeding, dropout 0.1, Adam 1e-3, batches
of 64 sentences) once per precision, one after the other, with the same thread count and the same
CPU affinity (run the script under ``taskset`` to pin it), each for ``--minutes`` of training time
(validation excluded). Then decodes the test set from each run's last checkpoint and scores it.
Prints a table (median steady-state target tok/s, the ratio to fp32, updates, BLEU, chrF) and
writes ``benchmarks/results/precision-<date>.json``.

``--profile-steps N`` also profiles N updates per precision with ``torch.profiler`` and prints the
operators that take the most time, so a slow precision can be explained, not just measured.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from transduce.data.generate import write_task  # noqa: E402

MODEL = {"cell": "lstm", "attention": "mlp", "embedding_size": 256, "encoder_hidden_size": 256,
         "bidirectional": True, "decoder_hidden_size": 512, "layers": 1, "input_feeding": True,
         "dropout": 0.1}
WARMUP_FRAC = 0.2  # leading share of logged intervals dropped as warm-up


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def machine() -> dict:
    import torch

    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "mkldnn_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
            "affinity": sorted(os.sched_getaffinity(0))}


def config(data: Path, model_dir: Path, precision: str, minutes: float, threads: int,
           max_steps: int | None = None, dev: bool = True) -> dict:
    return {
        "name": f"precision-{precision}", "seed": 1, "model_dir": str(model_dir),
        "data": {"train": str(data / "train"), "dev": str(data / "dev") if dev else None,
                 "tokenizer": "word"},
        "model": MODEL,
        "training": {"optimizer": "adam", "lr": 1e-3, "batch_size": 64, "max_minutes": minutes,
                     "max_steps": max_steps, "validate_every": 1_000_000, "log_every": 5,
                     "precision": precision, "threads": threads, "device": "cpu"},
        "decoding": {"beam_size": 5, "batch_size": 64},
    }


def steady(values: list[float]) -> float | None:
    """Median of per-interval rates after dropping the first WARMUP_FRAC (at least one)."""
    if not values:
        return None
    skip = max(1, round(len(values) * WARMUP_FRAC)) if len(values) > 2 else 0
    return statistics.median(values[skip:])


def run(cmd: list, env: dict, out: Path) -> float:
    t0 = time.perf_counter()
    with open(out, "wb") as f:
        res = subprocess.run([str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT, env=env)
    if res.returncode:
        raise RuntimeError(f"failed ({res.returncode}): {' '.join(map(str, cmd))}\n"
                           + out.read_text(errors="replace")[-2000:])
    return time.perf_counter() - t0


def train_and_score(precision: str, data: Path, work: Path, args: argparse.Namespace) -> dict:
    """Train for the budget in a fresh process, then decode the test set; return the numbers."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    model_dir = work / precision
    cfg_path = work / f"{precision}.json"
    cfg_path.write_text(json.dumps(config(data, model_dir, precision, args.minutes, args.threads)))
    log(f"{precision}: training for {args.minutes} min")
    wall = run([sys.executable, "-m", "transduce", "train", cfg_path, "--overwrite"], env,
               work / f"{precision}.train.log")
    events = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    rates = [e["tgt_tok_s"] for e in events if e.get("event") == "train"]
    log(f"{precision}: decoding {args.test} test sentences at beam {args.beam}")
    scores_file = work / f"{precision}.scores.json"
    decode_s = run([sys.executable, "-m", "transduce", "test", model_dir, "--checkpoint", "last",
                    "--src", data / "test.src", "--ref", data / "test.tgt", "--json",
                    "--beam-size", str(args.beam)], env, scores_file)
    scores = json.loads(scores_file.read_text().strip().splitlines()[-1])
    return {"tok_s": steady(rates), "tok_s_intervals": rates,
            "updates": max(e.get("step", 0) for e in events),
            "bleu": scores["bleu"], "chrf": scores["chrf"], "train_wall_s": round(wall, 1),
            "decode_s": round(decode_s, 1)}


def profile(precision: str, data: Path, work: Path, steps: int, threads: int,
            top: int = 12) -> list[dict]:
    """The operators that take the most self CPU time over ``steps`` updates."""
    import logging

    import torch
    from torch.profiler import ProfilerActivity

    from transduce.config import load_config
    from transduce.training.trainer import Trainer

    torch.set_num_threads(threads)
    logging.getLogger("transduce").setLevel(logging.WARNING)
    cfg = config(data, work / f"profile-{precision}", precision, 60.0, threads,
                 max_steps=steps, dev=False)
    trainer = Trainer(load_config(cfg), overwrite=True)
    with torch.profiler.profile(activities=[ProfilerActivity.CPU]) as prof:
        trainer.train()
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in rows)
    out = [{"op": e.key, "calls": e.count, "self_ms": round(e.self_cpu_time_total / 1e3, 1),
            "share": round(e.self_cpu_time_total / total, 3)} for e in rows[:top]]
    print(f"\n{precision}: top operators by self CPU time over {steps} updates "
          f"(total {total / 1e6:.1f} s)")
    for r in out:
        print(f"  {r['op'][:48]:48s} {r['calls']:7d} calls {r['self_ms']:10.1f} ms "
              f"{100 * r['share']:5.1f}%")
    return out


def gemm_gflops(dtype_name: str, m: int = 64, k: int = 1024, n: int = 2048,
                repeat: int = 20) -> float:
    """GFLOP/s of one (m x k) @ (k x n) product, the size of the decoder's per-step GEMMs."""
    import torch

    dtype = getattr(torch, {"fp32": "float32", "bf16": "bfloat16"}[dtype_name])
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    a @ b
    t0 = time.perf_counter()
    for _ in range(repeat):
        a @ b
    return 2 * m * k * n * repeat / (time.perf_counter() - t0) / 1e9


def table(results: dict) -> str:
    base = results.get("fp32", {}).get("tok_s")
    lines = ["| precision | target tok/s | vs fp32 | updates | test BLEU | test chrF |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        ratio = f"{r['tok_s'] / base:.2f}x" if base and r["tok_s"] else "-"
        lines.append(f"| {name} | {r['tok_s'] or 0:,.0f} | {ratio} | {r['updates']:,} | "
                     f"{r['bleu']:.1f} | {r['chrf']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=2.0, help="training budget per precision")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads for every run")
    ap.add_argument("--train", type=int, default=100_000, help="training pairs")
    ap.add_argument("--test", type=int, default=500, help="test sentences decoded and scored")
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--profile-steps", type=int, default=0,
                    help="also profile this many updates per precision (0: no profile)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args(argv)
    precisions = args.precisions.split(",")
    report = {"date": dt.date.today().isoformat(), "machine": machine(), "args": {
        k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "model": MODEL, "uptime_before": uptime()}
    log(f"{report['machine']} | {report['uptime_before']}")
    with tempfile.TemporaryDirectory(prefix="transduce-precision-") as tmp:
        work = Path(tmp)
        data = write_task("reverse", work / "data", {"train": args.train, "dev": 200,
                                                     "test": args.test}, vocab=100, max_len=25)
        results = {p: train_and_score(p, data, work, args) for p in precisions}
        if args.profile_steps:
            report["profile"] = {p: profile(p, data, work, args.profile_steps, args.threads)
                                 for p in precisions}
            report["gemm_gflops"] = {p: round(gemm_gflops(p), 1) for p in precisions}
            print(f"\none 64x1024 @ 1024x2048 GEMM, GFLOP/s: {report['gemm_gflops']}")
    report["results"] = results
    report["uptime_after"] = uptime()
    print("\n" + table(results))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"precision-{report['date']}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    log(f"wrote {path} | {report['uptime_after']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
