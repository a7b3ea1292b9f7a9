"""Several machines (issue #16 item 12): two ``transduce train --nnodes 2`` "machines" on
loopback (c10d rendezvous, gloo, one process each). One machine is killed mid-run (SIGKILL to
every process of it, as when a machine dies) and started again; the survivor's torchrun fails,
is started again by transduce's launcher, and both resume from ``last/`` (``save_every``). The
run ends at its ``max_steps`` with the same weights as a run that was never interrupted.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import transduce
from conftest import tiny_config
from transduce import checkpoint as ck, model_dir as md

STEPS = 300
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(data: Path, root: Path, name: str) -> Path:
    cfg = tiny_config(data, root / name, training={
        "max_steps": STEPS, "max_epochs": 1000, "validate_every": 1000, "log_every": 50,
        "save_every": 0.002, "threads": 1})
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _machine(config: Path, port: int, log: Path) -> subprocess.Popen:
    """One machine: transduce's launcher, its torchrun agent and the agent's worker."""
    return subprocess.Popen([sys.executable, "-m", "transduce", "train", str(config), "--nnodes",
                             "2", "--rdzv-endpoint", f"127.0.0.1:{port}", "--max-restarts", "2"],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env=ENV,
                            start_new_session=True)


def _tree(pid: int) -> list[int]:
    """``pid`` and every process below it (torchrun starts its workers in their own sessions)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _wait(predicate, what: str, procs: list[subprocess.Popen], timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert all(p.poll() is None for p in procs), f"a machine exited while waiting for {what}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _step(model_dir: Path) -> int:
    try:
        return ck.read_meta(model_dir / md.LAST)["step"]
    except Exception:  # not written yet, or being replaced
        return 0


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_machine_killed_mid_run_comes_back_and_the_run_ends_as_if_it_had_not(reverse_data,
                                                                                 tmp_path):
    config, model_dir, port = _config(reverse_data, tmp_path, "model"), tmp_path / "model", _port()
    a = _machine(config, port, tmp_path / "a.log")
    b = _machine(config, port, tmp_path / "b.log")
    try:
        _wait(lambda: _step(model_dir) >= 60, "last/ at step 60", [a, b])
        killed_at = _step(model_dir)
        for pid in _tree(b.pid):
            os.kill(pid, signal.SIGKILL)
        b.wait()
        # the survivor's collectives break; its torchrun exits and the launcher starts it again
        _wait(lambda: "starting it again" in (tmp_path / "a.log").read_text(), "the restart", [a])
        b = _machine(config, port, tmp_path / "b2.log")
        assert a.wait(timeout=180) == 0, (tmp_path / "a.log").read_text()[-3000:]
        assert b.wait(timeout=60) == 0, (tmp_path / "b2.log").read_text()[-3000:]
    finally:
        for p in (a, b):
            if p.poll() is None:
                for pid in _tree(p.pid):
                    os.kill(pid, signal.SIGKILL)
    assert killed_at < STEPS and _step(model_dir) == STEPS
    log = (model_dir / "train.log").read_text()
    assert "resuming from step" in log
    assert transduce.load(model_dir).translate(["w1 w2 w3"])[0]  # loadable, decodes

    # the same two-process run, never interrupted: the same weights, bit for bit
    other = _config(reverse_data, tmp_path, "uninterrupted")
    subprocess.run([sys.executable, "-m", "transduce", "train", str(other), "--nproc", "2"],
                   check=True, env=ENV, capture_output=True)
    got, want = (load_file(d / md.LAST / "model.safetensors")
                 for d in (model_dir, tmp_path / "uninterrupted"))
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in got)


def test_nnodes_needs_the_rendezvous_and_a_count(tmp_path, capsys):
    from transduce.cli import main

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": {"train": "x", "dev": "y"}}))
    assert main(["train", str(config), "--nnodes", "2"]) == 1
    assert "--nnodes and --rdzv-endpoint go together" in capsys.readouterr().err
    assert main(["train", str(config), "--nnodes", "two", "--rdzv-endpoint", "h:1"]) == 1
    assert "--nnodes two: give N or MIN:MAX" in capsys.readouterr().err
