#!/usr/bin/env python3
"""The CUDA paths, checked: train the benchmark model in fp32, bf16 and fp16 on one GPU.

    python benchmarks/cuda_check.py                      # 1 min per precision
    python benchmarks/cuda_check.py --minutes 3 --batch-size 256

Each precision trains the benchmark model of ``precision.py`` (reversal task, bi-LSTM 256 per
direction, LSTM decoder 512, MLP attention, input feeding) for ``--minutes`` of training time with
``transduce train`` on ``cuda``, one after the other, then the table shows the median steady-state
target tok/s, the ratio to fp32, the updates made and the last logged training loss (a loss that
falls in every precision shows that bf16 autocast and fp16 with its gradient scaler train).
Writes ``benchmarks/results/cuda-<date>.json``. Exits with status 2 and one line when no GPU is
visible.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
from pathlib import Path

from precision import REPO, config, log, run, steady, uptime

from transduce.data.generate import write_task


def gpu() -> str | None:
    """The GPU's name, or None when torch sees none."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def train(precision: str, data: Path, work: Path, minutes: float, batch_size: int) -> dict:
    cfg = config(data, work / precision, precision, minutes, threads=4, dev=False)
    cfg["training"].update(device="cuda", batch_size=batch_size)
    path = work / f"{precision}.json"
    path.write_text(json.dumps(cfg))
    log(f"{precision}: training for {minutes} min")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "0")}
    wall = run([sys.executable, "-m", "transduce", "train", path, "--overwrite"], env,
               work / f"{precision}.log")
    events = [json.loads(line) for line in (work / precision / "metrics.jsonl").read_text()
              .splitlines()]
    steps = [e for e in events if e.get("event") == "train"]
    return {"tok_s": steady([e["tgt_tok_s"] for e in steps]),
            "updates": max((e["step"] for e in steps), default=0),
            "first_loss": steps[0]["loss"] if steps else None,
            "last_loss": steps[-1]["loss"] if steps else None, "train_wall_s": round(wall, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=1.0, help="training budget per precision")
    ap.add_argument("--precisions", default="fp32,bf16,fp16")
    ap.add_argument("--batch-size", type=int, default=64, help="sentences per batch")
    ap.add_argument("--train", type=int, default=100_000, help="training pairs")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args(argv)
    name = gpu()
    if name is None:
        print("error: no CUDA GPU is visible to torch (torch.cuda.is_available() is False); "
              "run this on a machine with a GPU and a CUDA build of torch", file=sys.stderr)
        return 2
    report = {"date": dt.date.today().isoformat(), "gpu": name, "args": {
        k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "uptime_before": uptime()}
    log(f"{name} | {report['uptime_before']}")
    with tempfile.TemporaryDirectory(prefix="transduce-cuda-") as tmp:
        work = Path(tmp)
        data = write_task("reverse", work / "data", {"train": args.train}, vocab=100, max_len=25)
        results = {p: train(p, data, work, args.minutes, args.batch_size)
                   for p in args.precisions.split(",")}
    report["results"] = results
    base = results.get("fp32", {}).get("tok_s")
    print(f"\n{name}, batches of {args.batch_size} sentences, {args.minutes} min each")
    print("| precision | target tok/s | vs fp32 | updates | loss first -> last |")
    print("|---|---:|---:|---:|---|")
    for p, r in results.items():
        ratio = f"{r['tok_s'] / base:.2f}x" if base and r["tok_s"] else "-"
        print(f"| {p} | {r['tok_s'] or 0:,.0f} | {ratio} | {r['updates']:,} | "
              f"{r['first_loss'] or 0:.3f} -> {r['last_loss'] or 0:.3f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"cuda-{report['date']}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
