"""Memory is bounded by the batch settings, whatever the data.

A scaled-down version of "a corpus that mixes 1,000-token lines with short ones": with a token
budget, training on long lines must not need much more memory than training on short ones,
because the budget counts padding and the source x target attention grid. The peak RSS of each
run is measured in a fresh process (glibc told to return every large block, so RSS follows
the live tensors). A control run with the attention grid left out of the budget (the old cost
model) shows that the measurement does catch the problem. benchmarks/memory.py runs the full-size
case.
"""
from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np

from transduce.config import load_config
from transduce.data.batching import attention_cost, batch_cost, batch_indices

CHILD = r'''
import json, re, sys
import torch
torch.set_num_threads(1)
from transduce.config import load_config
from transduce.training import trainer as trainer_mod

def peak_kib():
    return int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))

def rss_kib():
    return int(re.search(r"VmRSS:\s+(\d+)", open("/proc/self/status").read()).group(1))

real_cost = trainer_mod.attention_cost
results = {}
for name, cfg, old_cost_model in json.loads(sys.argv[1]):
    trainer_mod.attention_cost = (lambda *a: 0.0) if old_cost_model else real_cost
    trainer = trainer_mod.Trainer(load_config(cfg))
    sizes = [len(b) for b in trainer._epoch_batches(0)]
    open("/proc/self/clear_refs", "w").write("5")  # peak RSS := RSS now
    before = rss_kib()
    trainer.train()
    results[name] = {"peak_mib": (peak_kib() - before) / 1024, "batches": len(sizes),
                     "largest_batch": max(sizes)}
print(json.dumps(results))
'''

SHORT, LONG = 8, 150
MODEL = {"embedding_size": 16, "encoder_hidden_size": 16, "decoder_hidden_size": 32,
         "attention": "mlp", "input_feeding": False, "dropout": 0.0}  # the most memory per cell


def _write(path: Path, pairs: list[tuple[str, str]]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".src").write_text("".join(s + "\n" for s, _ in pairs))
    path.with_suffix(".tgt").write_text("".join(t + "\n" for _, t in pairs))
    return str(path)


def _pairs(n: int, length: int, rng: random.Random) -> list[tuple[str, str]]:
    out = []
    for _ in range(n):
        seq = [f"w{rng.randrange(12)}" for _ in range(length)]
        out.append((" ".join(seq), " ".join(reversed(seq))))
    return out


def _budget() -> int:
    """A budget the longest allowed pair fits into on its own (vocabulary: 12 words + 4)."""
    att = attention_cost("mlp", MODEL["decoder_hidden_size"], MODEL["embedding_size"], 16)
    return int(batch_cost(1, LONG, LONG + 1, att)) + 50


def test_token_budget_bounds_the_attention_grid_of_long_lines():
    """Unit level: with the grid counted, a batch of long lines holds fewer of them; without it
    (att_cost=0) it would hold many, each with a grid 300x larger than a short line's."""
    rng = np.random.default_rng(0)
    src = np.concatenate([rng.integers(1, 20, 500), np.full(40, 1000)])
    tgt = np.concatenate([rng.integers(1, 20, 500), np.full(40, 1000)])
    att = attention_cost("mlp", 512, 256, 8000)
    budget = 4000
    for b in batch_indices(src, tgt, batch_tokens=budget, att_cost=att):
        cells = len(b) * src[b].max() * (tgt[b].max() + 1)
        assert len(b) == 1 or att * cells <= budget
    old = batch_indices(src, tgt, batch_tokens=budget)  # the padded-length-only cost model
    assert max(len(b) for b in old if src[b].max() == 1000) == 3  # 3 x 1000 x 1001 cells


def test_peak_memory_with_long_lines_stays_near_short_lines(reverse_data, tmp_path):
    rng = random.Random(0)
    short = _write(tmp_path / "short" / "train", _pairs(640, SHORT, rng))
    mixed_pairs = _pairs(320, SHORT, rng) + _pairs(40, LONG, rng)
    rng.shuffle(mixed_pairs)
    mixed = _write(tmp_path / "mixed" / "train", mixed_pairs)
    dev = _write(tmp_path / "dev" / "dev", _pairs(6, SHORT, rng) + _pairs(2, 3 * LONG, rng))

    def cfg(name: str, train: str) -> dict:
        return {"name": name, "model_dir": str(tmp_path / name), "seed": 1,
                "data": {"train": train, "dev": dev, "max_src_len": LONG, "max_tgt_len": LONG},
                "model": MODEL,
                "training": {"batch_tokens": _budget(), "max_epochs": 1, "validate_every": 10**6,
                             "log_every": 10**6, "lr": 0.01},
                "decoding": {"beam_size": 1, "max_len_a": 0.0, "max_len_b": 5}}

    warm = cfg("warm", short)  # first-use costs (lazy imports, allocator pools) land here
    warm["training"]["max_steps"] = 2
    runs = [("warm-up", warm, False), ("short", cfg("short", short), False),
            ("mixed", cfg("mixed", mixed), False),
            ("mixed-old-cost-model", cfg("old", mixed), True)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "65536"}
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(runs)], capture_output=True,
                       text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    short_mib, mixed_mib = res["short"]["peak_mib"], res["mixed"]["peak_mib"]
    old_mib = res["mixed-old-cost-model"]["peak_mib"]
    print(json.dumps(res))
    # bounded by the batch settings: long lines cost at most about twice the short-line peak
    assert mixed_mib <= 2 * short_mib + 24, res
    # the control: the same data, budgeted by padded length only, needs far more
    assert old_mib >= 3 * mixed_mib and old_mib >= mixed_mib + 60, res
    assert res["mixed"]["largest_batch"] > res["mixed-old-cost-model"]["largest_batch"] / 2


def test_default_settings_cut_long_sources_and_skip_long_targets_with_a_warning(tmp_path,
                                                                                caplog):
    """With the default data.max_src_len (100) a 1,000-token source is cut to 100 tokens and
    kept; with the default max_tgt_len (100) a pair with a 1,000-token target is skipped. Both
    are counted with their share of the data, a warning past 1 %."""
    from transduce.training.trainer import Trainer

    rng = random.Random(1)
    pairs = _pairs(30, SHORT, rng)
    pairs[7] = (_pairs(1, 1000, rng)[0][0], pairs[7][1])
    pairs[20] = _pairs(1, 1000, rng)[0]
    train = _write(tmp_path / "data" / "train", pairs)
    cfg = load_config({"model_dir": str(tmp_path / "model"), "data": {"train": train},
                       "model": MODEL})
    with caplog.at_level(logging.WARNING, logger="transduce"):
        trainer = Trainer(cfg)
    trainer._close_log()
    assert len(trainer.data.src) == 29 and max(trainer.data.src_lens) == 100
    assert max(trainer.data.tgt_lens) == SHORT
    assert ("of 30 training pairs, 1 sources were cut to data.max_src_len=100 tokens and 1 pairs "
            f"skipped (0 empty, 1 with targets over data.max_tgt_len=100; first at {train}.src:21)"
            ": 6.7 % of the data") in caplog.text


def test_under_one_percent_is_an_info_line_not_a_warning(tmp_path, caplog):
    from transduce.data.corpus import filter_pairs

    src = [["w"] * (150 if i == 0 else 5) for i in range(200)]
    with caplog.at_level(logging.INFO, logger="transduce"):
        keep, stats = filter_pairs(src, [["w"]] * 200, 100, 100, "t.src")
    assert len(keep) == 200 and stats.truncated == 1 and stats.skipped == 0
    (record,) = [r for r in caplog.records if "sources were cut" in r.getMessage()]
    assert record.levelno == logging.INFO and "0.5 % of the data" in record.getMessage()


def test_lean_loss_equals_cross_entropy_and_its_gradient():
    """The trainer's loss (which reuses the logits' memory) gives F.cross_entropy's value and
    gradient, with and without label smoothing, padding ignored."""
    import torch
    import torch.nn.functional as F

    from transduce.training.loss import smoothed_nll

    torch.manual_seed(0)
    for eps in (0.0, 0.1, 0.35):
        x = torch.randn(300, 23, dtype=torch.float64, requires_grad=True)
        y = torch.randint(0, 23, (300,))
        y[::5] = 0  # PAD_ID
        ref = F.cross_entropy(x, y, ignore_index=0, label_smoothing=eps, reduction="sum")
        (g_ref,) = torch.autograd.grad(ref * 0.7, x)
        ours = smoothed_nll(x * 1.0, y, eps)
        (g_ours,) = torch.autograd.grad(ours * 0.7, x)
        assert torch.allclose(ours, ref, rtol=1e-12)
        assert torch.allclose(g_ours, g_ref, atol=1e-12)
