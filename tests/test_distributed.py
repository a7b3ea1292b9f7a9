"""Data-parallel training under torchrun (gloo, CPU): two ranks equal one process.

Two ranks with one batch each make the same update as one process that accumulates the same two
batches (``training.accumulate: 2``): the epoch's batch list is the same on every rank, rank r
takes batches r, r + 2, ..., and the loss is normalised by the token count of both. Dropout is 0,
so the only difference is where the two gradients are summed. Tolerance: 1e-6 absolute on every
weight (measured: identical, since the loss scaling by the number of ranks is a power of two).

The run stops after 4 updates and is resumed for 4 more with ``transduce train --nproc 2`` (the
shortcut that starts torchrun), so resuming under DDP and the launcher are covered too.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import tiny_config
from transduce.config import load_config
from transduce.errors import TransduceError
from transduce.training.trainer import Trainer

STEPS = 8
TOLERANCE = 1e-6


def _config(data: Path, model_dir: Path, **training) -> dict:
    return tiny_config(data, model_dir, model={"dropout": 0.0},
                       training={"max_steps": STEPS, "validate_every": 1000, "log_every": 1,
                                 "threads": 1, "device": "cpu", **training})


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


@pytest.fixture(scope="module")
def ddp_dir(reverse_data, tmp_path_factory) -> Path:
    """Two ranks: 4 updates under torchrun, then 4 more resumed with --nproc 2."""
    work = tmp_path_factory.mktemp("ddp")
    cfg = work / "config.yaml"
    cfg.write_text(yaml.safe_dump(_config(reverse_data, work / "model")))
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
          "-m", "transduce", "train", str(cfg), "--set", "training.max_steps=4"], work)
    _run([sys.executable, "-m", "transduce", "train", str(cfg), "--nproc", "2"], work)
    return work / "model"


@pytest.fixture(scope="module")
def single_dir(reverse_data, tmp_path_factory) -> Path:
    """One process accumulating the same two batches per update."""
    model_dir = tmp_path_factory.mktemp("single") / "model"
    Trainer(load_config(_config(reverse_data, model_dir, accumulate=2))).train()
    return model_dir


def _events(model_dir: Path, kind: str) -> list[dict]:
    lines = (model_dir / "metrics.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == kind]


def test_rank0_alone_writes_one_checkpoint_set_and_the_loss_falls(ddp_dir):
    assert sorted(p.name for p in ddp_dir.iterdir()) == [
        "best", "config.yaml", "last", "metrics.jsonl", "train.log", "vocab.src.txt",
        "vocab.tgt.txt"]
    train = _events(ddp_dir, "train")
    assert [e["step"] for e in train] == list(range(1, STEPS + 1))  # one writer, each step once
    first, last = (sum(e["loss"] for e in part) / 3 for part in (train[:3], train[-3:]))
    assert last < 0.97 * first
    valid = _events(ddp_dir, "valid")  # at the end of each run
    assert [e["step"] for e in valid] == [STEPS // 2, STEPS]
    assert valid[1]["dev_loss"] < valid[0]["dev_loss"]
    log = (ddp_dir / "train.log").read_text()
    assert "resuming from step 4" in log


def test_two_ranks_match_one_process_with_the_same_global_batch(ddp_dir, single_dir):
    ddp = load_file(ddp_dir / "last" / "model.safetensors")
    one = load_file(single_dir / "last" / "model.safetensors")
    assert ddp.keys() == one.keys()
    worst = max(float((ddp[k] - one[k]).abs().max()) for k in ddp)
    assert worst <= TOLERANCE, worst
    state = torch.load(ddp_dir / "last" / "trainer_state.pt", weights_only=True)
    assert (state["step"], state["batch_in_epoch"], state["world_size"]) == (STEPS, 2 * STEPS, 2)
    assert len(state["rank_rng"]) == 1  # rank 1's RNG state, for an exact resume
    # both runs saw the same tokens: the logged losses agree too
    for a, b in zip(_events(ddp_dir, "train"), _events(single_dir, "train")):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)


def test_resuming_with_another_number_of_processes_is_refused(ddp_dir, reverse_data):
    cfg = _config(reverse_data, ddp_dir, max_steps=STEPS + 2)
    with pytest.raises(TransduceError, match="2 process"):
        Trainer(load_config(cfg))
