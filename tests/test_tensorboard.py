"""training.tensorboard: event files with scalars and attention images, read back."""
from __future__ import annotations

import sys

import pytest

from conftest import tiny_config
from transduce.config import load_config
from transduce.errors import TransduceError
from transduce.training.trainer import Trainer

pytest.importorskip("tensorboard")


def test_event_files_hold_scalars_and_attention_images(reverse_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(reverse_data, tmp_path / "model",
                      training={"max_steps": 6, "validate_every": 3, "log_every": 2,
                                "tensorboard": True})
    Trainer(load_config(cfg)).train()
    events = EventAccumulator(str(tmp_path / "model" / "tensorboard"),
                              size_guidance={"images": 0}).Reload()
    tags = events.Tags()
    for tag in ("train/loss", "train/ppl", "train/lr", "train/tgt_tok_s"):
        assert [e.step for e in events.Scalars(tag)] == [2, 4, 6]
    for tag in ("dev/loss", "dev/ppl", "dev/bleu", "dev/chrf"):
        assert [e.step for e in events.Scalars(tag)] == [3, 6]
    assert {"attention/0", "attention/1", "attention/2"} <= set(tags["images"])
    image = events.Images("attention/0")[-1]
    assert image.step == 6 and image.encoded_image_string.startswith(b"\x89PNG")


def test_missing_package_is_one_clear_error(reverse_data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    cfg = tiny_config(reverse_data, tmp_path / "model", training={"tensorboard": True})
    with pytest.raises(TransduceError, match=r"pip install 'transduce\[tensorboard\]'"):
        Trainer(load_config(cfg))
