"""Checkpoints: atomic writes (a failure at any point keeps the previous one loadable), a clear
error on a full disk, safe loading (no pickle ever runs), versioned metadata.

Every file of a checkpoint is written from bytes in memory by ``checkpoint._write``, so the
failures are injected there (a file half written, then the process dies) and into ``torch.save``
(which serializes the trainer state)."""
from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from transduce import checkpoint as ckpt
from conftest import tiny_config
from transduce.cli import main
from transduce.config import ModelConfig
from transduce.errors import TransduceError
from transduce.model.seq2seq import build_model
from transduce.checkpoint import (find_checkpoint, load_trainer_state, load_weights, read_meta,
                                  save_checkpoint)

TINY = ModelConfig(embedding_size=8, encoder_hidden_size=8, decoder_hidden_size=8, dropout=0.0)


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(TINY, 12, 12)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def _loads_as(path: Path, expected: torch.nn.Module) -> dict:
    """The checkpoint that find_checkpoint picks at ``path`` holds ``expected``'s weights."""
    found = find_checkpoint(path)
    assert found is not None, "no loadable checkpoint left"
    model = _model(99)
    meta = load_weights(model, found)
    assert _same_weights(model, expected)
    return meta


STATE = {"step": 3, "epoch": 0, "batch_in_epoch": 3, "best_score": None, "bad_validations": 0,
         "elapsed": 1.0, "nonfinite": 0, "optimizer": {"state": {}, "param_groups": []},
         "schedule": {}, "scaler": {}, "rng": {"torch": torch.get_rng_state()}}


# ---- atomic writes: a failure at each point of a save ------------------------------------------
class Boom(RuntimeError):
    pass


def _fail_write(name):
    def patch(monkeypatch):
        real = ckpt._write

        def half_written(path, data):  # writes half the file, then dies
            if path.name != name:
                return real(path, data)
            real(path, data[:len(data) // 2])
            raise Boom(f"killed while writing {name}")
        monkeypatch.setattr(ckpt, "_write", half_written)
    return patch


def _fail_torch_save(monkeypatch):
    def partial(obj, f, *a, **k):
        f.write(b"PK\x03\x04 partial")
        raise Boom("killed while serializing the trainer state")
    monkeypatch.setattr(ckpt.torch, "save", partial)


def _fail_rename(n):
    def patch(monkeypatch):
        real, calls = os.rename, []

        def rename(src, dst, *a, **k):
            calls.append(src)
            if len(calls) == n:
                raise Boom(f"killed at rename {n}")
            return real(src, dst, *a, **k)
        monkeypatch.setattr(os, "rename", rename)
    return patch


def _fail_cleanup(monkeypatch):
    real = shutil.rmtree

    def rmtree(path, *a, **k):
        if str(path).endswith(".old") and Path(path).exists():
            raise Boom("killed while removing the old checkpoint")
        return real(path, *a, **k)
    monkeypatch.setattr(ckpt.shutil, "rmtree", rmtree)


@pytest.mark.parametrize("inject", [_fail_write("model.safetensors"), _fail_torch_save,
                                    _fail_write("trainer_state.pt"), _fail_write("meta.json"),
                                    _fail_rename(1), _fail_rename(2), _fail_cleanup],
                         ids=["weights", "torch.save", "trainer_state", "meta",
                              "rename-last-to-old", "rename-tmp-to-last", "remove-old"])
def test_failure_anywhere_in_a_save_keeps_a_loadable_checkpoint(tmp_path, monkeypatch, inject):
    old, new = _model(1), _model(2)
    save_checkpoint(tmp_path / "last", old, {"step": 1}, STATE)
    inject(monkeypatch)
    with pytest.raises(Boom):
        save_checkpoint(tmp_path / "last", new, {"step": 2}, STATE)
    monkeypatch.undo()
    # whatever was interrupted: a complete checkpoint is found, old or (after the swap) new
    found = find_checkpoint(tmp_path / "last")
    meta = read_meta(found)
    _loads_as(tmp_path / "last", old if meta["step"] == 1 else new)
    assert load_trainer_state(found)["step"] == 3
    assert not (tmp_path / "last.tmp").exists()
    # and the next save works and leaves exactly one checkpoint directory
    save_checkpoint(tmp_path / "last", new, {"step": 3}, STATE)
    assert _loads_as(tmp_path / "last", new)["step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_a_kill_between_the_renames_leaves_last_old_which_training_and_loading_use(tmp_path):
    """SIGKILL cannot be caught: simulate what it leaves (a half-filled last.tmp, last/ already
    renamed to last.old) and check that the next save and every loader cope."""
    old = _model(1)
    save_checkpoint(tmp_path / "last", old, {"step": 1}, STATE)
    os.rename(tmp_path / "last", tmp_path / "last.old")
    (tmp_path / "last.tmp").mkdir()
    (tmp_path / "last.tmp" / "model.safetensors").write_bytes(b"\x00" * 10)
    assert find_checkpoint(tmp_path / "last") == tmp_path / "last.old"
    _loads_as(tmp_path / "last", old)
    new = _model(2)
    save_checkpoint(tmp_path / "last", new, {"step": 2}, STATE)
    _loads_as(tmp_path / "last", new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_write_order_is_files_fsync_rename_then_directory_fsync(tmp_path, monkeypatch):
    events = []
    real_write, real_fsync, real_rename = ckpt._write, ckpt._fsync, os.rename
    monkeypatch.setattr(ckpt, "_write", lambda p, data: (events.append(("write", p.name)),
                                                         real_write(p, data)))  # + its fsync
    monkeypatch.setattr(ckpt, "_fsync", lambda p: (events.append(("fsync", Path(p).name)),
                                                   real_fsync(p)))
    monkeypatch.setattr(os, "rename", lambda a, b: (events.append(("rename", Path(a).name,
                                                                   Path(b).name)),
                                                    real_rename(a, b)))
    save_checkpoint(tmp_path / "last", _model(1), {"step": 1}, STATE)
    events.clear()
    save_checkpoint(tmp_path / "last", _model(2), {"step": 2}, STATE)
    assert sorted(events[:3]) == [("write", "meta.json"), ("write", "model.safetensors"),
                                  ("write", "trainer_state.pt")]
    assert events[3:] == [("fsync", "last.tmp"), ("rename", "last", "last.old"),
                          ("rename", "last.tmp", "last"), ("fsync", tmp_path.name)]


# ---- disk full --------------------------------------------------------------------------------
def _enospc_writing(name):
    def patch(monkeypatch):  # the disk fills up while this file is written
        real = ckpt._write

        def write(path, data):
            if path.name == name:
                real(path, data[:len(data) // 3])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            return real(path, data)
        monkeypatch.setattr(ckpt, "_write", write)
    return patch


def _enospc_in_torch_save(monkeypatch):
    """torch.save on a full disk: writing to a path itself it fails as on /dev/full, with a
    RuntimeError that has lost the OS error (a traceback, once); writing to a file object, the
    object's write raises OSError(ENOSPC)."""
    real = torch.save

    class Full:
        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def flush(self):
            pass

    def save(obj, f, *a, **k):
        return real(obj, "/dev/full" if isinstance(f, (str, os.PathLike)) else Full(), *a, **k)
    monkeypatch.setattr(ckpt.torch, "save", save)


@pytest.mark.parametrize("inject", [_enospc_writing("model.safetensors"),
                                    _enospc_writing("trainer_state.pt"),
                                    _enospc_writing("meta.json"), _enospc_in_torch_save],
                         ids=["weights", "trainer_state", "meta", "inside-torch.save"])
def test_disk_full_is_a_clear_error_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch,
                                                                      inject):
    old = _model(1)
    save_checkpoint(tmp_path / "last", old, {"step": 1}, STATE)
    inject(monkeypatch)
    with pytest.raises(TransduceError) as e:
        save_checkpoint(tmp_path / "last", _model(2), {"step": 2}, STATE)
    msg = str(e.value)
    assert "disk full" in msg and "previous checkpoint" in msg and "kept" in msg
    assert str(tmp_path / "last") in msg and "\n" not in msg
    monkeypatch.undo()
    assert _loads_as(tmp_path / "last", old)["step"] == 1
    assert not (tmp_path / "last.tmp").exists()


@pytest.fixture(scope="module")
def trained(reverse_data, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ckpt")
    cfg = tiny_config(reverse_data, root / "model", training={"max_steps": 10,
                                                              "validate_every": 5})
    config = root / "c.yaml"
    config.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(config)]) == 0
    return root / "model", config


def _copy(trained, tmp_path) -> tuple[Path, Path]:
    model_dir, config = trained
    shutil.copytree(model_dir, tmp_path / "model")
    cfg = yaml.safe_load(config.read_text())
    cfg["model_dir"] = str(tmp_path / "model")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "model", tmp_path / "c.yaml"


@pytest.mark.parametrize("inject", [_enospc_writing("model.safetensors"), _enospc_in_torch_save],
                         ids=["weights", "inside-torch.save"])
def test_disk_full_during_training_stops_with_one_line_and_keeps_last(trained, tmp_path,
                                                                      monkeypatch, capsys,
                                                                      inject):
    model_dir, config = _copy(trained, tmp_path)
    before = (model_dir / "last" / "model.safetensors").read_bytes()
    inject(monkeypatch)
    assert main(["train", str(config), "--set", "training.max_steps=15"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "disk full" in err[-1]
    assert "Traceback" not in "\n".join(err)
    monkeypatch.undo()
    assert (model_dir / "last" / "model.safetensors").read_bytes() == before
    assert read_meta(model_dir / "last")["step"] == 10
    # space freed: the same command resumes from step 10
    assert main(["train", str(config), "--set", "training.max_steps=15"]) == 0
    assert read_meta(model_dir / "last")["step"] == 15


# ---- safe loading: a malicious pickle never runs -------------------------------------------
class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def _malicious_files(marker: Path, where: Path) -> dict[str, Path]:
    """The same payload as a plain pickle and in torch.save's zip format."""
    plain = where / "plain.pkl"
    plain.write_bytes(pickle.dumps({"optimizer": _Payload(marker)}))
    zipped = where / "zipped.pt"
    torch.save({"step": 1, "optimizer": _Payload(marker)}, zipped)
    return {"plain": plain, "zipped": zipped}


def test_the_payload_is_live(tmp_path):
    """Control: unpickled without protection, these files do create their marker."""
    probe = tmp_path / "probe"
    for path in _malicious_files(probe, tmp_path).values():
        pickle.loads(path.read_bytes()) if path.suffix == ".pkl" else \
            torch.load(path, weights_only=False)
        assert probe.exists()
        probe.unlink()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("kind", ["plain", "zipped"])
@pytest.mark.parametrize("env", [{}, {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}])
def test_malicious_trainer_state_is_refused_and_never_runs(trained, tmp_path, monkeypatch,
                                                           capsys, kind, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    model_dir, config = _copy(trained, tmp_path)
    marker = tmp_path / "PWNED"
    bad = _malicious_files(marker, tmp_path)[kind]
    shutil.copy(bad, model_dir / "last" / "trainer_state.pt")
    with pytest.raises(TransduceError, match="refused to load the trainer state"):
        load_trainer_state(model_dir / "last")
    assert main(["train", str(config), "--set", "training.max_steps=12"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "trainer_state.pt" in err and "refused" in err
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["plain", "zipped"])
def test_malicious_weights_file_is_refused_and_never_runs(trained, tmp_path, capsys, kind):
    model_dir, config = _copy(trained, tmp_path)
    marker = tmp_path / "PWNED"
    bad = _malicious_files(marker, tmp_path)[kind]
    for name in ("best", "last"):
        shutil.copy(bad, model_dir / name / "model.safetensors")
    with pytest.raises(TransduceError, match="cannot load the weights"):
        load_weights(_model(0), model_dir / "best")
    assert main(["translate", str(model_dir), "-i", str(config)]) == 1
    assert "model.safetensors" in capsys.readouterr().err
    assert main(["train", str(config), "--set", "training.max_steps=12"]) == 1
    assert "model.safetensors" in capsys.readouterr().err
    assert not marker.exists()


def test_trainer_state_holds_only_plain_values_and_tensors(trained):
    model_dir, _ = trained
    state = torch.load(model_dir / "last" / "trainer_state.pt", weights_only=True)

    def plain(x):
        if isinstance(x, dict):
            return all(isinstance(k, (str, int)) and plain(v) for k, v in x.items())
        if isinstance(x, (list, tuple)):
            return all(plain(v) for v in x)
        return x is None or isinstance(x, (bool, int, float, str, torch.Tensor))
    assert plain(state)
    assert state["step"] == 10 and "optimizer" in state and "rng" in state


# ---- metadata ---------------------------------------------------------------------------------
@pytest.mark.parametrize("change,message", [
    ({"version": 99}, "unknown checkpoint format version 99"),
    ({"version": "1"}, "unknown checkpoint format version '1'"),
    ({"format": "something-else"}, "not a transduce checkpoint"),
])
def test_meta_version_and_format_are_checked(trained, tmp_path, capsys, change, message):
    model_dir, _ = _copy(trained, tmp_path)
    for name in ("best", "last"):
        meta = json.loads((model_dir / name / "meta.json").read_text())
        meta.update(change)
        (model_dir / name / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(TransduceError, match=message):
        read_meta(model_dir / "best")
    assert main(["translate", str(model_dir), "-i", str(model_dir / "vocab.src.txt")]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "meta.json" in err and message in err


def test_meta_carries_format_version_and_step(trained):
    model_dir, _ = trained
    meta = read_meta(model_dir / "last")
    assert meta["format"] == "transduce-checkpoint" and meta["version"] == 1
    assert meta["step"] == 10


def test_tied_weights_and_views_of_one_buffer_save_and_load(tmp_path):
    """Tied embeddings are stored once; weights that are views of one buffer (as cuDNN flattens
    RNN weights) are stored as separate tensors instead of being refused by safetensors."""
    cfg = ModelConfig(**{**TINY.model_dump(), "tied_embeddings": True,
                         "embedding_size": TINY.decoder_hidden_size})
    torch.manual_seed(3)
    model = build_model(cfg, 12, 12)
    rnn = model.encoder.rnn
    names = [n for n, _ in rnn.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in rnn.parameters()])
    offset = 0
    for name in names:  # re-point every RNN weight into one flat buffer, like flatten_parameters
        p = getattr(rnn, name)
        view = flat[offset:offset + p.numel()].view_as(p)
        offset += p.numel()
        setattr(rnn, name, torch.nn.Parameter(view))
    save_checkpoint(tmp_path / "ck", model, {})
    torch.manual_seed(4)
    fresh = build_model(cfg, 12, 12)
    load_weights(fresh, tmp_path / "ck")
    assert fresh.decoder.output.weight is fresh.decoder.embed.weight
    assert _same_weights(fresh, model)


def test_tied_weights_load_under_either_name(tmp_path):
    """A file holding a tied weight under its other name (as older checkpoints, written by
    safetensors' save_model, may) loads too."""
    from safetensors.torch import save_file
    cfg = ModelConfig(**{**TINY.model_dump(), "tied_embeddings": True,
                         "embedding_size": TINY.decoder_hidden_size})
    torch.manual_seed(3)
    model = build_model(cfg, 12, 12)
    state = {k: v.clone() for k, v in model.state_dict().items() if k != "decoder.embed.weight"}
    save_checkpoint(tmp_path / "ck", model, {})
    save_file(state, str(tmp_path / "ck" / ckpt.WEIGHTS))
    torch.manual_seed(4)
    fresh = build_model(cfg, 12, 12)
    load_weights(fresh, tmp_path / "ck")
    assert fresh.decoder.output.weight is fresh.decoder.embed.weight
    assert _same_weights(fresh, model)
