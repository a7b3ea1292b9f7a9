"""transduce tune: the tune: schema, a small study and what it writes, pruning, resuming after
kill -9, and --jobs 2. Tiny trials on the generated reversal task."""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import tiny_config

import transduce
from transduce.config import load_config
from transduce.errors import TransduceError
from transduce.tuning.report import rows

SPACE = {"training.lr": {"log_uniform": [1e-3, 3e-2]},
         "model.attention": {"choice": ["dot", "mlp"]}}


def study_config(data: Path, out: Path, **tune) -> dict:
    cfg = tiny_config(data, out, training={"threads": 1})
    cfg["tune"] = {"space": SPACE, "trials": 4, "trial_steps": 30, **tune}
    return cfg


def trials_of(study_dir: Path, name: str = "tiny") -> list:
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{study_dir / 'study.db'}")
    return study.get_trials(deepcopy=False)


@pytest.mark.parametrize("space,message", [
    ({"training.lrr": {"uniform": [0, 1]}}, "tune.space: 'training.lrr' is not a config key; "
                                            "did you mean 'training.lr'?"),
    ({"model": {"choice": [1]}}, "tune.space: 'model' is not a config key"),
    ({"tune.trials": {"int": [1, 3]}}, "tune.space: 'tune.trials' is not a config key"),
    ({"model.dropout": {"uniform": [0.0, 1.0]}}, "tune.space 'model.dropout': 1.0 is not allowed "
                                                 "(config key 'model.dropout': Input should be "
                                                 "less than 1)"),
    ({"model.attention": {"choice": ["dot", "luong"]}}, "tune.space 'model.attention': 'luong' "
                                                        "is not allowed"),
    ({"training.batch_size": {"uniform": [8, 64]}}, "8.0 is not allowed (config key "
                                                    "'training.batch_size': Input should be a "
                                                    "valid integer)"),
    ({"training.batch_size": {"int": [0, 64], "step": 8}}, "tune.space 'training.batch_size': 0"),
    ({"training.lr": {"log_uniform": [0, 1e-3]}}, "log_uniform needs a low end above 0"),
    ({"training.lr": {"uniform": [1e-3, 1e-4]}}, "needs the low end below the high end"),
    ({"training.lr": {"uniform": [1e-4, 1e-3], "choice": [1e-3]}},
     "give one of log_uniform, uniform, int, choice (got ['uniform', 'choice'])"),
    ({"model.dropout": {"uniform": [0, 0.5], "step": 0.1}}, "tune.space.model.dropout.step"),
    ({"training.lr": {"loguniform": [1e-4, 1e-3]}},
     "unknown config key 'tune.space.training.lr.loguniform'"),
])
def test_the_tune_schema_rejects_unknown_keys_and_bad_distributions(tmp_path, space, message):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"tune": {"space": space}}))
    with pytest.raises(TransduceError) as e:
        load_config(path)
    assert message in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


def test_the_contract_space_loads_and_tune_keys_are_checked():
    cfg = load_config({"tune": {"space": {
        "training.lr": {"log_uniform": [1e-4, 3e-3]}, "model.dropout": {"uniform": [0.0, 0.5]},
        "model.attention": {"choice": ["dot", "general", "mlp"]},
        "data.vocab_size": {"choice": [2000, 4000, 8000]},
        "training.batch_tokens": {"int": [1000, 6000], "step": 500}}, "trials": 12,
        "trial_minutes": 2, "trial_steps": 500, "metric": "bleu"}})
    assert cfg.tune.space["training.batch_tokens"].values() == [1000, 6000]
    assert "tune" in cfg.to_dict() and "tune" not in load_config({}).to_dict()
    with pytest.raises(TransduceError, match="did you mean 'tune.trials'"):
        load_config({"tune": {"trails": 3}})


def test_a_study_writes_its_db_best_yaml_and_plots(reverse_data, tmp_path):
    summary = transduce.tune(study_config(reverse_data, tmp_path / "study"))
    out = tmp_path / "study"
    assert (out / "study.db").is_file() and summary.study_dir == out
    finished = [r for r in summary.trials if r["state"] in ("complete", "pruned")]
    assert len(summary.trials) == len(finished) == 4
    assert {p.name for p in summary.plots} == {"history.png", "importances.png",
                                               "slice-training.lr.png",
                                               "slice-model.attention.png"}
    assert all(p.stat().st_size > 1000 for p in summary.plots)
    best = load_config(out / "best.yaml")  # trainable as is: a fresh run of the best trial
    assert not best.tune.space and best.model_dir == str(out / "best-run")
    assert best.training.lr == summary.best["params"]["training.lr"]
    assert best.training.max_steps == 30
    assert summary.best_model_dir == out / f"trial-{summary.best['trial']:03d}"
    assert (summary.best_model_dir / "best" / "model.safetensors").is_file()
    # a finished study run again trains nothing more
    again = transduce.tune(study_config(reverse_data, out))
    assert len(again.trials) == 4 and again.best == summary.best


def test_a_far_too_high_learning_rate_is_pruned(reverse_data, tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    cfg = study_config(reverse_data, out, space={"training.lr": {"log_uniform": [1e-3, 10.0]}},
                       trials=3, metric="loss")  # the loss is defined from the first validation
    study = optuna.create_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    for lr in (0.01, 0.02, 10.0):  # two sound runs, then one the pruner should stop
        study.enqueue_trial({"training.lr": lr})
    summary = transduce.tune(cfg)
    assert [r["state"] for r in summary.trials] == ["complete", "complete", "pruned"]
    assert summary.trials[2]["step"] == 15  # at its first validation
    assert trials_of(out)[2].state == optuna.trial.TrialState.PRUNED


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "transduce", "tune", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def test_kill_9_then_rerun_gives_the_trials_asked_for(reverse_data, tmp_path):
    out, path = tmp_path / "study", tmp_path / "c.yaml"
    cfg = study_config(reverse_data, out, trials=3, trial_steps=90, pruner="none")
    cfg["training"].update(validate_every=30, log_every=30)
    path.write_text(yaml.safe_dump(cfg))
    proc = _cli(str(path), start_new_session=True)
    deadline = time.time() + 120
    while not (out / "trial-001" / "last" / "trainer_state.pt").exists():  # trial 1 half done
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[0]
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    states = [t.state for t in trials_of(out)]
    assert states[:2] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING]

    rerun = _cli(str(path))
    output = rerun.communicate(timeout=240)[0]
    assert rerun.returncode == 0, output
    table = rows(optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}"))
    assert [r["state"] for r in table] == ["complete", "interrupted", "complete", "complete"]
    assert table[1]["note"] == "run again as 2" and table[2]["note"] == "resumes 1"
    assert table[2]["model_dir"] == str(out / "trial-001")  # resumed in place, not restarted
    assert "resuming from step" in (out / "trial-001" / "train.log").read_text()
    assert (out / "trial-003").is_dir() and not (out / "trial-002").exists()
    assert "resuming the study: trials 1 were cut short" in output


def test_ctrl_c_saves_the_trial_and_a_rerun_resumes_it(reverse_data, tmp_path):
    out, path = tmp_path / "study", tmp_path / "c.yaml"
    cfg = study_config(reverse_data, out, trials=2, trial_steps=60, pruner="none")
    cfg["training"].update(validate_every=30, log_every=30)
    path.write_text(yaml.safe_dump(cfg))
    proc = _cli(str(path))
    deadline = time.time() + 120
    while not (out / "trial-000" / "last" / "trainer_state.pt").exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[0]
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130 and "interrupted at step" in output, output
    assert trials_of(out)[0].user_attrs["interrupted"] is True
    rerun = _cli(str(path))
    output = rerun.communicate(timeout=240)[0]
    assert rerun.returncode == 0, output
    table = rows(optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}"))
    assert [(r["state"], r["note"]) for r in table] == [
        ("interrupted", "run again as 1"), ("complete", "resumes 0"), ("complete", "")]
    assert "resuming from step" in (out / "trial-000" / "train.log").read_text()


def test_jobs_2_share_the_study_one_thread_each(reverse_data, tmp_path):
    out, path = tmp_path / "study", tmp_path / "c.yaml"
    cfg = study_config(reverse_data, out, trial_steps=30)
    del cfg["training"]["threads"]
    path.write_text(yaml.safe_dump(cfg))
    proc = _cli(str(path), "--jobs", "2")
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, output
    trials = trials_of(out)
    assert len(trials) == 4 and all(t.state.is_finished() for t in trials)
    assert {t.state for t in trials} <= {optuna.trial.TrialState.COMPLETE,
                                        optuna.trial.TrialState.PRUNED}
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    for t in trials:
        used = yaml.safe_load((Path(t.user_attrs["model_dir"]) / "config.yaml").read_text())
        assert used["training"]["threads"] == threads
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:]))  # two trials ran at a time
    assert "best: " in output and (out / "best.yaml").is_file()


def test_a_second_tune_on_a_busy_study_dir_is_refused(reverse_data, tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    with open(out / "tune.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_SH)  # as a running study's workers hold it
        with pytest.raises(TransduceError, match="another 'transduce tune' is running"):
            transduce.tune(study_config(reverse_data, out))


def test_tune_needs_a_space_and_a_dev_set(reverse_data, tmp_path):
    with pytest.raises(TransduceError, match="no tune.space"):
        transduce.tune(tiny_config(reverse_data, tmp_path))
    cfg = study_config(reverse_data, tmp_path)
    cfg["data"]["dev"] = None
    with pytest.raises(TransduceError, match="set data.dev"):
        transduce.tune(cfg)
