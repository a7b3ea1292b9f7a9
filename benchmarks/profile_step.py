#!/usr/bin/env python3
"""Profile training steps of the benchmark model with torch.profiler; print the top operators.

The model and batch are those of ``peers.py``: embeddings 256, bi-LSTM 256 per direction, LSTM
512 decoder with MLP attention and input feeding, dropout 0.1, Adam 1e-3, 64 reversal pairs of
1-25 symbols (vocabulary 100). One step = forward, the trainer's loss, backward, clipping, Adam.

    .venv/bin/python benchmarks/profile_step.py                 # 20 profiled steps, torch threads
    .venv/bin/python benchmarks/profile_step.py --threads 1 --steps 30 --input-feeding false

Writes the table to ``benchmarks/results/profile-<date>[-t<N>].txt`` as well.
"""
from __future__ import annotations

import argparse
import datetime as dt
import random
import time
from pathlib import Path

import torch

from transduce.config import load_config
from transduce.data.batching import make_batch
from transduce.model.seq2seq import build_model
from transduce.training.optim import build_optimizer
from transduce.training.loss import nll

OUT = Path(__file__).resolve().parent / "results"


def batch(rng: random.Random, n: int = 64, vocab: int = 100, max_len: int = 25,
          length: int | None = None):
    """n reversal pairs of 1-max_len symbols (or exactly ``length``), padded into a Batch."""
    src = [[rng.randrange(4, vocab + 4) for _ in range(length or rng.randint(1, max_len))]
           for _ in range(n)]
    return make_batch(src, [list(reversed(s)) for s in src])


def benchmark_model(attention: str = "mlp", input_feeding: bool = True):
    """The benchmark model of peers.py (vocabulary 100 + 4 specials) and the trainer's Adam."""
    cfg = load_config({"model_dir": "unused", "model": {
        "embedding_size": 256, "encoder_hidden_size": 256, "decoder_hidden_size": 512,
        "attention": attention, "input_feeding": input_feeding, "dropout": 0.1},
        "training": {"optimizer": "adam", "lr": 1e-3}})
    model = build_model(cfg.model, 104, 104).train()
    return model, build_optimizer(cfg.training, model.parameters())


def train_step(model, opt, b, clip: float | None = 5.0) -> None:
    """One update as the trainer makes it: forward, label-smoothed loss per token, backward,
    clipping (unless ``clip`` is None), Adam."""
    loss = nll(model(b.src, b.src_lens, b.tgt_in), b, 0.1)
    opt.zero_grad(set_to_none=True)
    (loss / b.n_tgt_tokens).backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--input-feeding", default="true", choices=["true", "false"])
    p.add_argument("--attention", default="mlp", choices=["mlp", "dot", "general"])
    p.add_argument("--rows", type=int, default=15)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model, opt = benchmark_model(a.attention, a.input_feeding == "true")
    rng = random.Random(1)
    batches = [batch(rng) for _ in range(a.steps + 5)]
    for b in batches[:5]:  # warm-up: allocator, oneDNN primitive caches
        train_step(model, opt, b)
    tokens = sum(b.n_tgt_tokens for b in batches[5:])
    tic = time.perf_counter()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for b in batches[5:]:
            train_step(model, opt, b)
    seconds = time.perf_counter() - tic
    header = (f"profile of {a.steps} training steps ({tokens} target tokens, "
              f"{tokens / seconds:,.0f} tgt tok/s under the profiler), {torch.get_num_threads()} "
              f"threads, input feeding {a.input_feeding}, {a.attention} attention, torch "
              f"{torch.__version__}")
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=a.rows)
    text = f"{header}\n{table}"
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    suffix = (f"-t{a.threads}" if a.threads else "") + (f"-{a.attention}" if a.attention != "mlp"
                                                         else "")
    path = OUT / f"profile-{dt.date.today().isoformat()}{suffix}.txt"
    path.write_text(text + "\n", encoding="utf-8")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
