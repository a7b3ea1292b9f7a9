"""training/state.py: the saved training position, early-stopping bookkeeping, stop reasons."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from transduce.config import TrainingConfig
from transduce.errors import TransduceError
from transduce.training.state import (PARTS, TrainerState, check_same_run, rng_state,
                                      set_rng_state)


class _Part:
    """A stand-in for the optimizer, schedule and scaler: something with a state dict."""

    def __init__(self, state: dict):
        self.state = state

    def state_dict(self) -> dict:
        return self.state


def _components(**state) -> dict:
    return {k: _Part(state) for k in PARTS if k != "rng"}


def test_state_file_round_trip_keeps_position_and_parts():
    st = TrainerState(step=7, epoch=1, batch_in_epoch=3, best_score=12.5, bad_validations=1,
                      elapsed=4.0, nonfinite=2, nonfinite_run=1, validated_at=5,
                      validate_every=60)
    components = {k: _Part({"x": i}) for i, k in enumerate(PARTS) if k != "rng"}
    saved = st.to_file(components, rngs=[{"x": 0}, {"x": 1}], world_size=2)
    back, back_parts = TrainerState.from_file(saved, Path("last"))
    assert back == st and saved["world_size"] == 2 and saved["rank_rng"] == [{"x": 1}]
    assert back_parts == {**{k: c.state for k, c in components.items()}, "rng": {"x": 0}}


def test_older_state_files_without_the_newer_counters_load():
    saved = TrainerState(step=3).to_file(_components(), [{}], 1)
    del saved["nonfinite_run"], saved["validated_at"], saved["validate_every"]
    back, _ = TrainerState.from_file(saved, Path("last"))
    assert (back.step, back.nonfinite_run, back.validated_at, back.validate_every) == \
        (3, 0, -1, None)


@pytest.mark.parametrize("value", [0, 2.0, "50"])
def test_a_chosen_validation_interval_must_be_a_positive_whole_number(value):
    saved = TrainerState(step=3).to_file(_components(), [{}], 1)
    saved["validate_every"] = value
    with pytest.raises(TransduceError, match="validate_every is .* not a whole number >= 1"):
        TrainerState.from_file(saved, Path("last"))


@pytest.mark.parametrize("key", ["step", "best_score", "optimizer", "rng"])
def test_a_state_file_missing_a_key_is_a_one_line_error(key):
    saved = TrainerState().to_file(_components(), [{}], 1)
    del saved[key]
    with pytest.raises(TransduceError, match=f"missing {key}"):
        TrainerState.from_file(saved, Path("last"))


@pytest.mark.parametrize("higher, values, best, bad", [
    (True, [1.0, 3.0, 2.0, float("nan")], 3.0, 2),
    (False, [5.0, 4.0, 4.0, 6.0], 4.0, 2),
])
def test_validated_tracks_the_best_score_and_the_run_of_bad_validations(higher, values, best,
                                                                         bad):
    st = TrainerState()
    news = [st.validated(v, higher) for v in values]
    assert news[:2] == [True, True] and not any(news[2:])
    assert (st.best_score, st.bad_validations) == (best, bad)


def test_stop_reasons():
    t = TrainingConfig(max_steps=10, max_minutes=1, patience=2)
    assert TrainerState(step=9, elapsed=59).stop_reason(t) == ""
    assert TrainerState(step=10).stop_reason(t) == "max_steps=10 reached"
    assert TrainerState(elapsed=60).stop_reason(t) == "max_minutes=1.0 reached"
    patient = TrainerState(bad_validations=2)
    assert patient.stop_reason(t) == ""  # during training the validation itself decides
    assert patient.stop_reason(t, resumed=True).startswith("early stopping")


def test_nonfinite_updates_stop_training_after_the_limit(tmp_path):
    st = TrainerState(step=4)
    st.skip_nonfinite(float("nan"), limit=2, model_dir=tmp_path)
    assert (st.nonfinite, st.nonfinite_run) == (1, 1)
    with pytest.raises(TransduceError, match="2 updates in a row had a NaN/inf loss"):
        st.skip_nonfinite(float("inf"), limit=2, model_dir=tmp_path)


def test_rng_state_restores_every_generator():
    state = rng_state()
    draws = random.random(), np.random.rand(), torch.rand(1).item()
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == draws


def test_resume_refuses_another_model_or_vocabulary(tmp_path):
    (tmp_path / "config.yaml").write_text("model: {cell: lstm, layers: 1}\ndata: {min_freq: 1}\n")
    check_same_run(tmp_path, {"model": {"cell": "lstm", "layers": 1}, "data": {"min_freq": 1},
                              "training": {"lr": 0.5}}, tmp_path / "last")  # lr may change
    with pytest.raises(TransduceError, match="'model.layers' is 2 but the run .* used 1"):
        check_same_run(tmp_path, {"model": {"cell": "lstm", "layers": 2}}, tmp_path / "last")
    with pytest.raises(TransduceError, match="'data.min_freq' is 2"):
        check_same_run(tmp_path, {"model": {"cell": "lstm", "layers": 1},
                                  "data": {"min_freq": 2}}, tmp_path / "last")
