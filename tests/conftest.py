"""Shared fixtures: tiny generated corpora and tiny configs. Everything seeded, one thread."""
from __future__ import annotations

import logging
import os
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from transduce.data.generate import write_task

torch.set_num_threads(1)


@contextmanager
def signal_after_update(step: int, sig: int = signal.SIGTERM):
    """Inside the block, a training sends itself ``sig`` right after the update of ``step``
    (as a user's Ctrl-C or a scheduler's SIGTERM would arrive)."""
    from transduce.training.trainer import Trainer

    real_update = Trainer._update

    def update_then_signal(self, batches):
        loss = real_update(self, batches)
        if self.state.step + 1 == step:  # the update of `step` has just run
            os.kill(os.getpid(), sig)
        return loss

    Trainer._update = update_then_signal
    try:
        yield
    finally:
        Trainer._update = real_update


@pytest.fixture(autouse=True)
def _quiet_logging():
    logging.getLogger("transduce").setLevel(logging.WARNING)
    yield


@pytest.fixture(scope="session")
def reverse_data(tmp_path_factory) -> Path:
    """A small reversal corpus: data/{train,dev,test}.{src,tgt}."""
    out = tmp_path_factory.mktemp("reverse")
    write_task("reverse", out, {"train": 600, "dev": 40, "test": 40}, vocab=12, max_len=8)
    return out


def tiny_config(data_dir: Path, model_dir: Path, **sections) -> dict:
    cfg = {
        "name": "tiny",
        "seed": 1,
        "model_dir": str(model_dir),
        "data": {"train": str(data_dir / "train"), "dev": str(data_dir / "dev"),
                 "tokenizer": "word"},
        # copy and coverage fixed off: reversal copies every token, so auto would switch copy on
        "model": {"embedding_size": 16, "encoder_hidden_size": 16, "decoder_hidden_size": 24,
                  "dropout": 0.0, "copy": False, "coverage": False},
        "training": {"batch_size": 32, "max_steps": 30, "validate_every": 15, "log_every": 5,
                     "lr": 0.01},
        "decoding": {"beam_size": 3, "batch_size": 16},
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            cfg.setdefault(section, {}).update(values)
        else:
            cfg[section] = values
    return cfg
