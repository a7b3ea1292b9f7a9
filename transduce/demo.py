"""``transduce demo``: dates in many formats -> ISO dates, trained in about two minutes.

Nothing is read from disk or network: the data is generated. The task needs attention (the year,
month and day sit in different places in each format), and the attention plot shows it.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from transduce.api import train
from transduce.data.corpus import read_parallel
from transduce.data.generate import write_task
from transduce.evaluate import evaluate
from transduce.plot import plot_attention

log = logging.getLogger("transduce")


def demo_config(model_dir: str, minutes: float) -> dict:
    data = f"{model_dir}/data"
    return {
        "name": "demo-dates",
        "model_dir": model_dir,
        "data": {"train": f"{data}/train", "dev": f"{data}/dev", "test": f"{data}/test",
                 "tokenizer": "char"},
        "model": {"cell": "lstm", "attention": "mlp", "embedding_size": 64,
                  "encoder_hidden_size": 96, "decoder_hidden_size": 128, "dropout": 0.1},
        # one thread: as fast as two for a model this small, and robust on a busy machine
        "training": {"batch_size": 64, "lr": 0.002, "max_minutes": minutes, "max_steps": 1500,
                     "validate_every": 250, "patience": 2, "log_every": 50,
                     # an easy task: dev chrF reaches 100 early, the loss still ranks checkpoints
                     "early_stopping_metric": "loss",
                     "label_smoothing": 0.0, "schedule": "constant", "threads": 1},
        "decoding": {"beam_size": 1, "max_len_a": 0.0, "max_len_b": 12},
    }


def run_demo(minutes: float = 2.0, model_dir: str = "runs/demo") -> int:
    tic = time.time()
    data = write_task("dates", f"{model_dir}/data", {"train": 40000, "dev": 300, "test": 500})
    log.info("demo: human-written dates -> ISO dates, generated in %s", data)
    model = train(demo_config(model_dir, minutes), overwrite=True)
    src, ref = read_parallel(data / "test.src", data / "test.tgt")
    hyps = model.translate(src)
    exact = 100.0 * sum(h == r for h, r in zip(hyps, ref)) / len(ref)
    scores = evaluate(hyps, ref, ["bleu", "chrf"])
    print("\nsample outputs (held-out test set):")
    for s, h, r in list(zip(src, hyps, ref))[:8]:
        mark = "ok " if h == r else "ERR"
        print(f"  {mark} {s:32s} -> {h}" + ("" if h == r else f"   (want {r})"))
    example = "Thursday, 26 Nov 2026"
    res = model.search([example], attention=True)[0][0]
    plot = plot_attention(res.attention, res.src_tokens, res.tgt_tokens,
                          Path(model_dir) / "attention.png", title=f"{example} -> {res.text}")
    print(f"\nexact match {exact:.1f}% | BLEU {scores['bleu']:.1f} | chrF {scores['chrf']:.1f} "
          f"on {len(ref)} held-out dates | {time.time() - tic:.0f} s in all")
    print(f"attention plot: {plot}    try: transduce translate {model_dir} <<< 'May 4, 1999'")
    return 0
