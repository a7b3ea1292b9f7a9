"""Kept checkpoints (training.keep_last / keep_best) and their average (transduce average)."""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

import transduce
from transduce import checkpoint as ck, checkpoints, model_dir as md
from transduce.cli import main
from transduce.errors import TransduceError

from conftest import tiny_config


@pytest.fixture(scope="module")
def run(reverse_data, tmp_path_factory):
    """60 updates, a validation every 10, the 3 most recent and the 2 best kept."""
    model_dir = tmp_path_factory.mktemp("kept") / "model"
    transduce.train(tiny_config(reverse_data, model_dir, training={
        "max_steps": 60, "validate_every": 10, "keep_last": 3, "keep_best": 2}))
    return model_dir


def _state(model_dir, path):
    model = md.load_model(model_dir, device="cpu")[3]
    ck.load_weights(model, path)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_the_most_recent_and_the_best_are_kept(run):
    entries = checkpoints.kept(run)
    steps = [s for s, _, _ in entries]
    losses = {s: meta["scores"]["loss"] for s, _, meta in entries}
    assert steps[-3:] == [40, 50, 60]
    best_two = sorted(range(10, 61, 10), key=lambda s: losses.get(s, float("inf")))[:2]
    assert set(steps) == {40, 50, 60} | set(best_two) and len(steps) <= 5
    assert not list((run / md.KEPT).glob("*.del")) and not list((run / md.KEPT).glob("*.tmp"))
    best_meta = ck.read_meta(run / md.BEST)
    assert best_meta["step"] in steps  # best/ is one of the kept ones


def test_averaging_identical_checkpoints_gives_the_same_weights(run, tmp_path):
    _, path, _ = checkpoints.kept(run)[-1]
    copies = []
    for i in range(3):
        copies.append(tmp_path / f"c{i}")
        shutil.copytree(path, copies[-1])
    model = md.load_model(run, device="cpu")[3]
    checkpoints.average(model, copies)
    expected = _state(run, path)
    assert all(torch.equal(t, expected[k]) for k, t in model.state_dict().items())


def test_averaging_two_checkpoints_gives_their_mean(run):
    (_, a, _), (_, b, _) = checkpoints.kept(run)[-2:]
    model = md.load_model(run, device="cpu")[3]
    checkpoints.average(model, [a, b])
    wa, wb = _state(run, a), _state(run, b)
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)
    for k, t in model.state_dict().items():
        assert torch.allclose(t, (wa[k] + wb[k]) / 2, atol=1e-7)


def test_the_average_command_writes_a_model_dir_every_command_loads(run, tmp_path, capsys):
    out = tmp_path / "avg"
    assert main(["average", str(run), "--last", "3", "-o", str(out)]) in (0, None)
    meta = ck.read_meta(out / md.BEST)
    assert meta["averaged_steps"] == [40, 50, 60]
    model = transduce.load(out)
    assert len(model.translate(["w1 w2 w3"])) == 1
    assert main(["average", str(run), "--best", "2", "-o", str(tmp_path / "avg2")]) in (0, None)
    with pytest.raises(TransduceError, match="not empty"):
        checkpoints.write_average(run, out, checkpoints.select(run, last=2))
    with pytest.raises(TransduceError, match="9 checkpoints asked for, 5 kept|9 checkpoints "
                                             "asked for"):
        checkpoints.select(run, last=9)


def test_without_kept_checkpoints_average_says_how_to_get_them(reverse_data, tmp_path):
    model_dir = tmp_path / "model"
    transduce.train(tiny_config(reverse_data, model_dir, training={"max_steps": 10}))
    assert not (model_dir / md.KEPT).exists()
    with pytest.raises(TransduceError, match="train with training.keep_last"):
        checkpoints.select(model_dir, last=2)


def test_rotation_survives_kill_9_at_a_random_moment(reverse_data, tmp_path):
    """Training that validates (and rotates kept/) at every update, killed at a random moment:
    every step-* folder left is a complete, loadable checkpoint."""
    cfg = tiny_config(reverse_data, tmp_path / "model", training={
        "max_steps": 100000, "validate_every": 1, "keep_last": 2, "keep_best": 1,
        "dev_sample": 2})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "transduce", "train", str(path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(checkpoints.kept(tmp_path / "model")) < 2:
        time.sleep(0.1)
    time.sleep(random.Random(7).uniform(0.2, 1.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    entries = checkpoints.kept(tmp_path / "model")
    assert entries
    folders = [p for p in (tmp_path / "model" / md.KEPT).iterdir()
               if p.name.startswith("step-") and p.name[5:].isdigit()]
    assert {p for _, p, _ in entries} == set(folders)  # no incomplete step-* folder
    model = md.load_model(tmp_path / "model", device="cpu")[3]
    for _, p, _ in entries:
        ck.load_weights(model, p)


def test_average_at_end_makes_the_average_best_when_it_scores_better(reverse_data, tmp_path):
    model_dir = tmp_path / "model"
    transduce.train(tiny_config(reverse_data, model_dir, training={
        "max_steps": 30, "validate_every": 10, "keep_last": 3, "average_at_end": 3}))
    events = [json.loads(line) for line in (model_dir / md.METRICS).read_text().splitlines()]
    (event,) = [e for e in events if e["event"] == "average"]
    assert event["steps"] == [10, 20, 30]
    best_single = min(e["dev_loss"] for e in events if e["event"] == "valid")
    assert event["best"] == (event["dev_loss"] < best_single)
    meta = ck.read_meta(model_dir / md.BEST)
    assert ("averaged_steps" in meta) == event["best"]
    if event["best"]:
        expected = checkpoints.average(md.load_model(model_dir, device="cpu")[3],
                                       [p for _, p, _ in checkpoints.kept(model_dir)])
        assert all(torch.equal(v, _state(model_dir, model_dir / md.BEST)[k])
                   for k, v in expected.state_dict().items())


def test_average_at_end_keeps_best_when_the_average_is_worse_and_needs_n_kept(run, tmp_path,
                                                                            caplog):
    model_dir = shutil.copytree(run, tmp_path / "copy")
    before = (model_dir / md.BEST / "model.safetensors").read_bytes()
    model = md.load_model(model_dir, device="cpu")[3]
    scores = {"loss": 1.0, "bleu": 0.0, "chrf": 0.0}
    event = checkpoints.average_at_end(model_dir, model, 3, lambda m: scores, "loss", 0.5, {})
    assert event["best"] is False and event["steps"] == [40, 50, 60]
    assert (model_dir / md.BEST / "model.safetensors").read_bytes() == before
    event = checkpoints.average_at_end(model_dir, model, 3, lambda m: scores, "loss", 2.0, {})
    assert event["best"] is True
    assert ck.read_meta(model_dir / md.BEST)["averaged_steps"] == [40, 50, 60]
    assert checkpoints.average_at_end(model_dir, model, 9, lambda m: scores, "loss", 2.0,
                                      {}) is None
    assert "9 checkpoints asked for" in caplog.text


@pytest.mark.parametrize("training, message", [
    ({"average_at_end": 3}, "set training.keep_last: 3"),
    ({"average_at_end": 1, "keep_last": 2}, "would average one checkpoint"),
])
def test_average_at_end_config_errors(training, message, tmp_path):
    with pytest.raises(TransduceError, match=message):
        transduce.config.load_config({"model_dir": str(tmp_path), "data": {"train": "x"},
                                      "training": training})
