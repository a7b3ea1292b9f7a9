"""Validation defaults: model selection on the dev loss, and a fixed, capped decoding sample."""
from __future__ import annotations

from transduce.config import load_config
from transduce.training.validation import DevSet


def _dev(n: int, **training) -> DevSet:
    cfg = load_config({"training": training})
    return DevSet([f"s{i}" for i in range(n)], [f"r{i}" for i in range(n)], None, None, cfg, 0.0)


def test_the_default_selection_metric_is_the_dev_loss():
    assert load_config({}).training.early_stopping_metric == "loss"


def test_the_decoded_sample_is_capped_fixed_and_in_file_order():
    big = _dev(5000)
    assert len(big.sample) == 500 == len(set(big.sample))
    assert big.sample == sorted(big.sample) == _dev(5000).sample  # the same every validation
    assert big.sample != list(range(500))  # spread over the file, not its head
    assert _dev(300).sample == list(range(300))  # small dev sets: all of it
    assert _dev(5000, dev_sample=None).sample == list(range(5000))
    assert len(_dev(5000, dev_sample=20).sample) == 20
