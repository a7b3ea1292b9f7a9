"""Validation defaults: model selection on the dev loss, a fixed, capped decoding sample, and an
interval that keeps validation to a bounded share of the training time."""
from __future__ import annotations

import json
import logging

import pytest

from conftest import tiny_config
from transduce.config import TrainingConfig, load_config
from transduce.checkpoint import load_trainer_state
from transduce.model_dir import LAST
from transduce.training.state import TrainerState
from transduce.training.trainer import Trainer
from transduce.training.validation import (AUTO_SHARE, AUTO_TIMED, DevSet, stretch_interval,
                                           validation_due)


def _dev(n: int, **training) -> DevSet:
    cfg = load_config({"training": training})
    return DevSet([f"s{i}" for i in range(n)], [f"r{i}" for i in range(n)], None, None, cfg, 0.0)


def test_the_default_selection_metric_is_the_dev_chrf():
    assert load_config({}).training.early_stopping_metric == "chrf"


def test_the_decoded_sample_is_capped_fixed_and_in_file_order():
    big = _dev(5000)
    assert len(big.sample) == 500 == len(set(big.sample))
    assert big.sample == sorted(big.sample) == _dev(5000).sample  # the same every validation
    assert big.sample != list(range(500))  # spread over the file, not its head
    assert _dev(300).sample == list(range(300))  # small dev sets: all of it
    assert _dev(5000, dev_sample=None).sample == list(range(5000))
    assert len(_dev(5000, dev_sample=20).sample) == 20


# ---- training.validate_every: auto ------------------------------------------------------------
def _state(step: int, per_update: float, **kw) -> TrainerState:
    return TrainerState(step=step, elapsed=step * per_update, **kw)


def test_a_fixed_interval_validates_every_so_many_updates():
    t = TrainingConfig(validate_every=7)
    due = [s for s in range(1, 30) if validation_due(t, _state(s, 1.0), 10 ** 6)]
    assert due == [7, 14, 21, 28]


@pytest.mark.parametrize("training, per_update, total, every", [
    ({"max_minutes": 10}, 0.1, 10 ** 6, 600),  # a tenth of the budget: 60 s at 0.1 s an update
    ({"max_minutes": 100}, 0.1, 10 ** 6, 3000),  # ... but at most 5 minutes apart
    ({}, 1.0, 10 ** 6, 300),  # no time budget: 5 minutes
    ({"max_minutes": 10}, 0.1, 2000, 200),  # a tenth of the updates when that comes first
    ({"max_minutes": 0.5}, 0.1, 10 ** 6, AUTO_TIMED),  # never shorter than the timed updates
])
def test_auto_sets_the_interval_from_the_speed_of_the_first_updates(training, per_update, total,
                                                                   every):
    t = TrainingConfig(**training)
    assert t.validate_every == "auto"
    st = _state(AUTO_TIMED - 1, per_update)
    assert not validation_due(t, st, total) and st.validate_every is None  # still timing
    st = _state(AUTO_TIMED, per_update)
    validation_due(t, st, total)
    assert st.validate_every == every
    # later it counts from the last validation
    assert not validation_due(t, _state(1000 + every - 1, per_update, validated_at=1000,
                                        validate_every=every), total)
    assert validation_due(t, _state(1000 + every, per_update, validated_at=1000,
                                    validate_every=every), total)


def test_slow_validations_stretch_the_interval_to_a_tenth_of_the_training_time():
    t = TrainingConfig()
    st = _state(600, 0.1, validate_every=600)
    stretch_interval(t, st, 5.0)  # 5 s every 60 s of training: under the share, kept
    assert st.validate_every == 600
    stretch_interval(t, st, 30.0)  # 30 s: at most 10 % of the time -> 270 s of training between
    assert st.validate_every == 2700 and AUTO_SHARE == 0.1
    fixed = _state(600, 0.1)
    stretch_interval(TrainingConfig(validate_every=500), fixed, 30.0)
    assert fixed.validate_every is None  # a fixed interval is the user's


def test_training_with_auto_keeps_the_interval_in_last_and_resumes_with_it(reverse_data, tmp_path,
                                                                           caplog):
    cfg = tiny_config(reverse_data, tmp_path / "model",
                      training={"validate_every": "auto", "max_steps": 60})
    with caplog.at_level(logging.INFO, logger="transduce"):
        Trainer(load_config(cfg)).train()
    chosen = [r.getMessage() for r in caplog.records if "validate_every: auto" in r.getMessage()]
    assert len(chosen) == 1 and chosen[0].startswith(f"validating every {AUTO_TIMED} updates")
    events = [json.loads(x) for x in (tmp_path / "model/metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e.get("event") == "valid"] == [AUTO_TIMED, 60]
    saved = load_trainer_state(tmp_path / "model" / LAST)["validate_every"]
    assert saved >= AUTO_TIMED
    caplog.clear()
    cfg["training"]["max_steps"] = 70
    with caplog.at_level(logging.INFO, logger="transduce"):
        Trainer(load_config(cfg)).train()  # resumes: the interval comes from last/
    assert not [r for r in caplog.records if "validate_every: auto" in r.getMessage()]
    assert load_trainer_state(tmp_path / "model" / LAST)["validate_every"] >= saved


def test_a_time_budget_lifts_the_ten_epoch_limit(tmp_path):
    """64 pairs are 2 batches an epoch: 10 epochs take well under the budget's 3 s."""
    from transduce.data.generate import write_task

    assert TrainingConfig().epoch_limit == 10
    assert TrainingConfig(max_minutes=20).epoch_limit == float("inf")
    assert TrainingConfig(max_minutes=20, max_epochs=3).epoch_limit == 3
    write_task("reverse", tmp_path / "data", {"train": 64, "dev": 8}, vocab=12, max_len=6)

    def run(name, **training):
        cfg = tiny_config(tmp_path / "data", tmp_path / name,
                          training={"max_steps": None, "validate_every": 1000, **training})
        Trainer(load_config(cfg)).train()
        return load_trainer_state(tmp_path / name / LAST)["epoch"]

    assert run("epochs") == 10
    assert run("budget", max_minutes=0.05) > 10
