"""model_dir.py: a model_dir is untrusted input and the user's files are sacred (#16).

Training never writes through a symbolic link in a model_dir (3) nor over files transduce did not
write (4); ``--overwrite`` builds the new run aside and replaces the old one only once the new one
has started (5); resume also compares the data settings (6); loading checks the sizes in
config.yaml against the weights' header before allocating, the weights' dtypes and values, the
trainer state's fields, deep meta.json, and caps decoding lengths (7); every file has one mode
(11). A full disk inside torch.save is tested in test_checkpoints.py (8).
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

import transduce
from conftest import tiny_config
from transduce import checkpoint as ck, model_dir as md
from transduce.cli import main


@pytest.fixture(scope="module")
def trained(reverse_data, tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("model-dir")
    cfg = tiny_config(reverse_data, root / "model", training={"max_steps": 6, "validate_every": 3})
    (root / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(root / "c.yaml")]) == 0
    return root / "model", cfg


def _copy(trained, tmp_path: Path, **sections) -> tuple[Path, str]:
    """A copy of the trained model_dir, and a config for it with ``sections`` merged in."""
    model_dir, cfg = trained
    shutil.copytree(model_dir, tmp_path / "model")
    cfg = yaml.safe_load(yaml.safe_dump(cfg))
    cfg["model_dir"] = str(tmp_path / "model")
    for section, values in sections.items():
        cfg[section].update(values)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "model", str(tmp_path / "c.yaml")


def _files(model_dir: Path, but: tuple[str, ...] = ()) -> dict[str, bytes]:
    return {str(p.relative_to(model_dir)): p.read_bytes() for p in sorted(model_dir.rglob("*"))
            if p.is_file() and p.name not in but}


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: "), err
    assert "Traceback" not in "\n".join(err)
    return err[-1]


def _edit_config(model_dir: Path, section: str, **values) -> None:
    cfg = yaml.safe_load((model_dir / "config.yaml").read_text())
    cfg[section].update(values)
    (model_dir / "config.yaml").write_text(yaml.safe_dump(cfg))


def _translate(model_dir: Path, tmp_path: Path) -> int:
    (tmp_path / "in.txt").write_text("w1 w2\n")
    return main(["translate", str(model_dir), "-i", str(tmp_path / "in.txt"), "-o",
                 str(tmp_path / "out.txt")])


# ---- 3: links -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [".write-test", "train.log", "metrics.jsonl", "config.yaml",
                                  "vocab.src.txt"])
def test_train_never_writes_through_a_link_in_model_dir(reverse_data, tmp_path, capsys, name):
    target = tmp_path / "precious.txt"
    target.write_text("the user's own file\n")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / name).symlink_to(target)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(
        tiny_config(reverse_data, model_dir, training={"max_steps": 2})))
    assert main(["train", str(tmp_path / "c.yaml")]) == 1
    msg = _error(capsys)
    assert f"model/{name}: a symbolic link in model_dir" in msg and "never writes through" in msg
    assert target.read_text() == "the user's own file\n"


def test_a_link_inside_a_checkpoint_is_refused_too(trained, tmp_path, capsys):
    model_dir, config = _copy(trained, tmp_path, training={"max_steps": 8})
    (tmp_path / "meta.json").write_bytes((model_dir / "last" / "meta.json").read_bytes())
    (model_dir / "last" / "meta.json").unlink()
    (model_dir / "last" / "meta.json").symlink_to(tmp_path / "meta.json")
    assert main(["train", config]) == 1
    assert "last/meta.json: a symbolic link in model_dir" in _error(capsys)


# ---- 4: files transduce did not write -----------------------------------------------------------
def test_a_directory_of_the_users_files_is_refused_even_with_overwrite(reverse_data, tmp_path,
                                                                      capsys):
    project = tmp_path / "project"
    (project / "tensorboard").mkdir(parents=True)
    (project / "config.yaml").write_text("# my settings, with comments\nmodel_dir: .\n")
    (project / "train.log").write_text("my own log\n")
    (project / "tensorboard" / "events.mine").write_text("mine")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(
        tiny_config(reverse_data, project, training={"max_steps": 2})))
    before = _files(project)
    for extra in ([], ["--overwrite"]):
        assert main(["train", str(tmp_path / "c.yaml"), *extra]) == 1
        msg = _error(capsys)
        assert "project: model_dir holds config.yaml, train.log, tensorboard but no " in msg
        assert "transduce did not write them" in msg and "choose a new or empty model_dir" in msg
        assert _files(project) == before


def test_a_model_dir_beside_the_users_other_files_leaves_them_alone(reverse_data, tmp_path,
                                                                   monkeypatch):
    """``model_dir: .`` in a folder of the user's own files (none of the names transduce
    writes): training and ``--overwrite`` leave them as they are."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine\n")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(
        tiny_config(reverse_data, Path("."), training={"max_steps": 2, "validate_every": 2})))
    for extra in ([], ["--overwrite"]):
        assert main(["train", "c.yaml", *extra]) == 0
    assert (tmp_path / "notes.txt").read_text() == "mine\n"
    assert yaml.safe_load((tmp_path / "c.yaml").read_text())["model_dir"] == "."
    assert (tmp_path / "best").is_dir()
    assert md.TRAIN_LOG_MARK in (tmp_path / "train.log").read_text().splitlines()[0]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name not in md.ENTRIES) == \
        ["c.yaml", "notes.txt"]  # no file of another name


# ---- 5: --overwrite -----------------------------------------------------------------------------
def _no_tensorboard(monkeypatch) -> dict:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # the import fails
    return {"tensorboard": True}


@pytest.mark.parametrize("fails", [lambda mp: {"precision": "fp16", "device": "cpu"},
                                   _no_tensorboard], ids=["fp16-on-cpu", "no-tensorboard"])
def test_an_overwrite_that_fails_to_start_leaves_the_old_run_intact(trained, tmp_path, capsys,
                                                                   monkeypatch, fails):
    model_dir, config = _copy(trained, tmp_path, training=fails(monkeypatch))
    before = _files(model_dir)
    assert main(["train", config, "--overwrite"]) == 1
    _error(capsys)
    assert _files(model_dir) == before  # train.log included: the attempt logged aside
    assert not (model_dir / md.STAGE).exists()


def test_an_overwrite_replaces_the_old_run_once_the_new_one_has_started(trained, tmp_path):
    model_dir, config = _copy(trained, tmp_path, training={"max_steps": 3, "validate_every": 3})
    (model_dir / "notes.txt").write_text("mine\n")
    assert main(["train", config, "--overwrite"]) == 0
    assert ck.read_meta(model_dir / "last")["step"] == 3
    log = (model_dir / "train.log").read_text()
    assert "training finished after 3 updates" in log and "after 6 updates" not in log
    assert '"step": 6' not in (model_dir / "metrics.jsonl").read_text()
    assert (model_dir / "notes.txt").read_text() == "mine\n"
    assert not (model_dir / md.STAGE).exists()


def test_a_stage_left_by_a_killed_overwrite_is_removed_and_the_old_run_resumes(trained, tmp_path,
                                                                              capsys):
    model_dir, config = _copy(trained, tmp_path, training={"max_steps": 8})
    (model_dir / md.STAGE).mkdir()
    (model_dir / md.STAGE / "config.yaml").write_text("half written")
    assert main(["train", config]) == 0
    assert "resuming from step 6" in capsys.readouterr().err
    assert not (model_dir / md.STAGE).exists()
    assert ck.read_meta(model_dir / "last")["step"] == 8


# ---- 6: data settings on resume -----------------------------------------------------------------
def test_resuming_on_another_corpus_is_refused(trained, tmp_path, capsys):
    for ext in ("src", "tgt"):
        (tmp_path / f"other.{ext}").write_text("w1 w2 w3\nw4 w5\n" * 20)
    model_dir, config = _copy(trained, tmp_path, data={"train": str(tmp_path / "other")},
                              training={"max_steps": 8})
    before = _files(model_dir, but=("train.log",))
    assert main(["train", config]) == 1
    msg = _error(capsys)
    assert f"config key 'data.train' is '{tmp_path / 'other'}' but the run in" in msg
    assert "set it back, or use --overwrite" in msg
    assert _files(model_dir, but=("train.log",)) == before


def test_a_finished_run_started_with_other_length_limits_refuses_and_keeps_its_config(
        trained, tmp_path, capsys):
    model_dir, config = _copy(trained, tmp_path, data={"max_src_len": 5})
    before = (model_dir / "config.yaml").read_bytes()
    assert main(["train", config]) == 1
    assert "config key 'data.max_src_len' is 5 but the run in" in _error(capsys)
    assert (model_dir / "config.yaml").read_bytes() == before


def test_the_dev_set_may_change_on_resume(trained, reverse_data, tmp_path):
    model_dir, config = _copy(trained, tmp_path, data={"dev": str(reverse_data / "test")},
                              training={"max_steps": 8, "validate_every": 4})
    assert main(["train", config]) == 0
    assert ck.read_meta(model_dir / "last")["step"] == 8


# ---- 7: untrusted loads -------------------------------------------------------------------------
@pytest.mark.parametrize("int8", [False, True], ids=["fp32", "exported-int8"])
def test_sizes_in_config_yaml_are_checked_against_the_weights_before_allocating(
        trained, tmp_path, capsys, monkeypatch, int8):
    model_dir, _ = _copy(trained, tmp_path)
    if int8:
        assert main(["export", "--int8", str(model_dir), str(tmp_path / "int8")]) in (0, None)
        model_dir = tmp_path / "int8"
    _edit_config(model_dir, "model", encoder_hidden_size=16_384)
    real = md.build_model

    def build_model(*a, **k):
        assert torch.get_default_device().type == "meta", \
            "a model of config.yaml's sizes was allocated before they were checked"
        return real(*a, **k)
    monkeypatch.setattr(md, "build_model", build_model)
    tic = time.perf_counter()
    assert _translate(model_dir, tmp_path) == 1
    assert time.perf_counter() - tic < 30
    msg = _error(capsys)
    assert "best/model.safetensors: weights do not match the model in config.yaml" in msg
    assert "size mismatch for encoder." in msg and "[65536, 16] in the model" in msg


def _rewrite_weights(model_dir: Path, change) -> None:
    for name in ("best", "last"):
        f = model_dir / name / "model.safetensors"
        state = load_file(f)
        save_file({k: change(k, v) for k, v in state.items()}, f, metadata={"format": "pt"})


def test_weights_of_another_dtype_are_refused(trained, tmp_path, capsys):
    model_dir, _ = _copy(trained, tmp_path)
    _rewrite_weights(model_dir, lambda k, v: v.double())
    assert _translate(model_dir, tmp_path) == 1
    assert "is torch.float64, not torch.float32" in _error(capsys)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_weights_with_nan_or_inf_are_refused(trained, tmp_path, capsys, bad):
    model_dir, _ = _copy(trained, tmp_path)
    first = []

    def poison(k, v):
        if not first:
            first.append(k)
            v = v.clone()
            v.view(-1)[0] = bad
        return v
    _rewrite_weights(model_dir, poison)
    assert _translate(model_dir, tmp_path) == 1
    msg = _error(capsys)
    assert "holds NaN or inf values" in msg and "use another checkpoint or retrain" in msg


@pytest.mark.parametrize("key,value,want", [
    ("step", -5, "step is -5, not a whole number >= 0"),
    ("step", "7", "step is '7', not a whole number >= 0"),
    ("epoch", 1.5, "epoch is 1.5, not a whole number >= 0"),
    ("elapsed", float("nan"), "elapsed is nan, not a finite number >= 0"),
    ("best_score", True, "best_score is True, not a finite number >= 0 or None"),
    ("validated_at", -2, "validated_at is -2, not a whole number >= -1"),
    ("optimizer", [1, 2], "optimizer is not a dict"),
    ("rank_rng", 3, "world_size 1 or rank_rng of the wrong type"),
])
def test_trainer_state_fields_are_checked_before_anything_is_written(trained, tmp_path, capsys,
                                                                    key, value, want):
    model_dir, config = _copy(trained, tmp_path, training={"max_steps": 8})
    path = model_dir / "last" / "trainer_state.pt"
    state = torch.load(path, weights_only=True)
    state[key] = value
    torch.save(state, path)
    before = _files(model_dir, but=("train.log",))
    assert main(["train", config]) == 1
    msg = _error(capsys)
    assert "last/trainer_state.pt: not a transduce trainer state" in msg and want in msg
    assert "--overwrite" in msg
    assert _files(model_dir, but=("train.log",)) == before


def test_meta_json_nested_deep_is_a_one_line_error(trained, tmp_path, capsys):
    model_dir, _ = _copy(trained, tmp_path)
    for name in ("best", "last"):
        (model_dir / name / "meta.json").write_text("[" * 100_000 + "]" * 100_000)
    assert _translate(model_dir, tmp_path) == 1
    assert "best/meta.json: unreadable checkpoint metadata" in _error(capsys)


def test_decoding_lengths_from_config_yaml_are_capped(trained, tmp_path):
    model_dir, _ = _copy(trained, tmp_path)
    _edit_config(model_dir, "decoding", max_len_b=10_000)
    model = transduce.load(model_dir)
    assert model.config.decoding.max_len == 4 * 100  # 4 x data.max_tgt_len, like the inputs
    assert len(model.translate(["w1 w2 w3"], beam_size=2)) == 1
    _edit_config(model_dir, "data", max_tgt_len=100_000)
    assert transduce.load(model_dir).config.decoding.max_len == md.MAX_OUTPUT_LEN


# ---- 11: one file mode ------------------------------------------------------------------------
def test_every_file_in_model_dir_has_the_same_mode(trained):
    model_dir, _ = trained
    mask = os.umask(0o022)
    os.umask(mask)
    modes = {str(p.relative_to(model_dir)): oct(p.stat().st_mode & 0o777)
             for p in model_dir.rglob("*") if p.is_file()}
    assert "best/model.safetensors" in modes
    assert set(modes.values()) == {oct(0o666 & ~mask)}, modes


# ---- cases of the bad-input catalogue (tests/test_bad_inputs.py runs them on a trained copy) ----
def _translate_args(c) -> list[str]:
    return ["translate", str(c.model_dir), "-i", c.file("in.txt", "w1 w2\n")]


def case_link(c) -> list[str]:
    (c.model_dir / "train.log").unlink()
    (c.model_dir / "train.log").symlink_to(c.file("elsewhere.log", "the user's own log\n"))
    return ["train", c.config(training={"max_steps": 12})]


def case_foreign_files(c) -> list[str]:
    """Files of the names transduce writes, with neither a checkpoint nor a run's train.log."""
    for name in ("best", "last"):
        shutil.rmtree(c.model_dir / name)
    (c.model_dir / "train.log").write_text("the user's own log\n")
    return ["train", c.config(), "--overwrite"]


def case_model_size(c) -> list[str]:
    _edit_config(c.model_dir, "model", encoder_hidden_size=16_384)
    return _translate_args(c)


def case_weights_dtype(c) -> list[str]:
    _rewrite_weights(c.model_dir, lambda k, v: v.double())
    return _translate_args(c)


def case_weights_nan(c) -> list[str]:
    _rewrite_weights(c.model_dir, lambda k, v: v * float("nan"))
    return _translate_args(c)


def case_trainer_state_step(c) -> list[str]:
    path = c.model_dir / "last" / "trainer_state.pt"
    torch.save({**torch.load(path, weights_only=True), "step": -5}, path)
    return ["train", c.config(training={"max_steps": 12})]


def case_deep_meta(c) -> list[str]:
    for name in ("best", "last"):
        (c.model_dir / name / "meta.json").write_text("[" * 100_000 + "]" * 100_000)
    return _translate_args(c)
