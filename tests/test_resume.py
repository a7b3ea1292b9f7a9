"""Exact resume: a run stopped anywhere and started again ends bit-identical to one never stopped.

The reference runs in-process; the interrupted runs are real processes (SIGKILL) or in-process
signals (SIGINT/SIGTERM). Dropout is on, so the torch RNG must be restored too, and the runs cross
an epoch boundary, so the data position must be. Everything on CPU with one thread.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import signal_after_update, tiny_config
from transduce.cli import main
from transduce.config import load_config
from transduce.model_dir import find_checkpoint
from transduce.training.trainer import Trainer

STEPS, EVERY = 40, 8  # 600 pairs / 32 = 19 batches an epoch: the runs cross two epoch ends


def _config(data: Path, model_dir: Path, **training) -> dict:
    cfg = tiny_config(data, model_dir, model={"dropout": 0.3},
                      training={"max_steps": STEPS, "validate_every": EVERY, "log_every": 4,
                                **training})
    return cfg


def _write(cfg: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _train(cfg: dict) -> Path:
    Trainer(load_config(cfg)).train()
    return Path(cfg["model_dir"])


def _state(model_dir: Path) -> dict:
    return torch.load(model_dir / "last" / "trainer_state.pt", weights_only=True)


def _same_state(a: dict, b: dict) -> None:
    """Optimizer moments, schedule, position and early-stopping state all equal."""
    for key in ("step", "epoch", "batch_in_epoch", "best_score", "bad_validations",
                "validated_at", "schedule"):
        assert a[key] == b[key], key
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for k in sa:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(sa[k][name], sb[k][name]), (k, name)
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])


@pytest.fixture(scope="module")
def reference(reverse_data, tmp_path_factory) -> Path:
    """An uninterrupted run."""
    return _train(_config(reverse_data, tmp_path_factory.mktemp("ref") / "model"))


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _last_step(model_dir: Path) -> int:
    ckpt = find_checkpoint(model_dir / "last")
    if ckpt is None:
        return -1
    try:
        return json.loads((ckpt / "meta.json").read_text())["step"]
    except (OSError, ValueError):  # caught between two renames: look again
        return -1


def test_sigkill_at_any_step_then_same_command_resumes_bit_identical(reference, reverse_data,
                                                                      tmp_path):
    model_dir = tmp_path / "model"
    config = _write(_config(reverse_data, model_dir), tmp_path / "c.yaml")
    cmd = [sys.executable, "-m", "transduce", "train", str(config)]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while _last_step(model_dir) < EVERY and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        # the first last/ is there; training is somewhere past it: kill without warning
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = _last_step(model_dir)
    assert EVERY <= killed_at < STEPS

    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"resuming from step {killed_at}" in r.stderr
    for name in ("last", "best"):
        assert _sha(model_dir / name / "model.safetensors") == \
            _sha(reference / name / "model.safetensors"), name
    _same_state(_state(model_dir), _state(reference))
    assert not any(p.name.endswith((".tmp", ".old")) for p in model_dir.iterdir())


def test_same_seed_and_config_give_identical_checkpoints(reference, reverse_data, tmp_path):
    again = _train(_config(reverse_data, tmp_path / "model"))
    for name in ("last", "best"):
        assert _sha(again / name / "model.safetensors") == \
            _sha(reference / name / "model.safetensors")
    _same_state(_state(again), _state(reference))
    meta_a = json.loads((again / "last" / "meta.json").read_text())
    meta_b = json.loads((reference / "last" / "meta.json").read_text())
    meta_a.pop("saved_at"), meta_b.pop("saved_at")
    assert meta_a == meta_b


@pytest.mark.parametrize("sig,code,at_step", [(signal.SIGTERM, 143, 13),
                                               (signal.SIGINT, 130, 16)])
def test_signal_saves_last_exits_and_resume_is_exact(reference, reverse_data, tmp_path,
                                                     capsys, sig, code, at_step):
    """SIGTERM between validations, SIGINT right on a validation step: both save last/ at the
    step boundary, exit 143/130 with how to resume, and the resumed run matches the reference."""
    config = _write(_config(reverse_data, tmp_path / "model"), tmp_path / "c.yaml")
    with signal_after_update(at_step, sig):
        assert main(["train", str(config)]) == code
    err = capsys.readouterr().err
    assert f"interrupted at step {at_step}" in err and "Resume with the same command" in err
    assert json.loads((tmp_path / "model/last/meta.json").read_text())["step"] == at_step

    assert main(["train", str(config)]) == 0
    assert f"resuming from step {at_step}" in capsys.readouterr().err
    assert _sha(tmp_path / "model/last/model.safetensors") == \
        _sha(reference / "last/model.safetensors")
    assert _sha(tmp_path / "model/best/model.safetensors") == \
        _sha(reference / "best/model.safetensors")
    _same_state(_state(tmp_path / "model"), _state(reference))


def test_resume_with_accumulation_cosine_schedule_and_token_batches(reverse_data, tmp_path):
    """Other moving parts of the state: accumulation groups, a warmup/cosine schedule, SGD
    momentum buffers, token-budget batches, early-stopping patience counters."""
    training = {"accumulate": 2, "schedule": "cosine", "warmup_steps": 5, "optimizer": "sgd",
                "lr": 0.5, "batch_tokens": 150, "max_steps": 24, "validate_every": 6,
                "patience": 50, "early_stopping_metric": "loss"}
    ref = _train(_config(reverse_data, tmp_path / "ref", **training))
    cfg = _config(reverse_data, tmp_path / "model", **training)
    with signal_after_update(9), pytest.raises(Exception) as e:
        _train(cfg)
    assert getattr(e.value, "exit_code", None) == 143
    _train(cfg)
    assert _sha(tmp_path / "model/last/model.safetensors") == \
        _sha(ref / "last/model.safetensors")
    a, b = _state(tmp_path / "model"), _state(ref)
    for key in ("step", "epoch", "batch_in_epoch", "best_score", "bad_validations", "schedule"):
        assert a[key] == b[key], key
    for k, v in a["optimizer"]["state"].items():
        assert torch.equal(v["momentum_buffer"], b["optimizer"]["state"][k]["momentum_buffer"])


def test_restart_restores_every_part_of_the_state(reference, tmp_path):
    """Building a Trainer on a finished model_dir restores exactly what last/ holds."""
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(reference, model_dir)
    cfg = load_config(yaml.safe_load((reference / "config.yaml").read_text()),
                      [f"model_dir={model_dir}"])
    trainer = Trainer(cfg)
    saved = _state(model_dir)
    assert trainer.resume_from == model_dir / "last"
    assert (trainer.state.step, trainer.state.epoch, trainer.state.batch_in_epoch) == \
        (saved["step"], saved["epoch"], saved["batch_in_epoch"])
    assert trainer.state.best_score == saved["best_score"] and trainer.state.best_score is not None
    assert trainer.schedule.state_dict() == saved["schedule"]
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(
        saved["optimizer"]["param_groups"][0]["lr"])
    opt = trainer.optimizer.state_dict()["state"]
    for k, v in saved["optimizer"]["state"].items():
        assert torch.equal(opt[k]["exp_avg_sq"], v["exp_avg_sq"])
    assert torch.equal(torch.get_rng_state(), saved["rng"]["torch"])
    trainer._close_log()


def test_running_a_finished_run_again_changes_nothing(reference, tmp_path, capsys):
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(reference, model_dir)
    cfg = yaml.safe_load((reference / "config.yaml").read_text())
    cfg["model_dir"] = str(model_dir)
    config = _write(cfg, tmp_path / "c.yaml")
    before = {p: _sha(p) for p in (model_dir / "last").iterdir()}
    before.update({p: _sha(p) for p in (model_dir / "best").iterdir()})
    assert main(["train", str(config)]) == 0
    assert "nothing left to train at step 40" in capsys.readouterr().err
    assert before == {p: _sha(p) for p in before}


def test_a_failed_or_interrupted_run_releases_its_log_file(reverse_data, tmp_path, monkeypatch):
    """The trainer's log handler goes away whatever ends the run, so a later run in the same
    process does not write into this model_dir's train.log."""
    import logging

    from transduce.errors import TransduceError

    log = logging.getLogger("transduce")
    before = list(log.handlers)
    real_loss = Trainer._loss
    monkeypatch.setattr(Trainer, "_loss", lambda *a, **k: real_loss(*a, **k) * float("nan"))
    cfg = _config(reverse_data, tmp_path / "model", max_nonfinite_updates=2)
    with pytest.raises(TransduceError, match="NaN"):
        _train(cfg)
    assert log.handlers == before
    bad = _config(reverse_data, tmp_path / "model2", precision="fp16", device="cpu")
    with pytest.raises(TransduceError, match="fp16"):  # fails after train.log was opened
        _train(bad)
    assert log.handlers == before
