"""Fine-tuning: training.init_from and training.reset (training/start.py)."""
import pytest
import torch

import transduce
from transduce import checkpoint as ck, model_dir as md
from transduce.data.generate import write_task
from transduce.decode.translator import Translator
from transduce.errors import TransduceError
from transduce.training.trainer import Trainer

from conftest import tiny_config

TEXTS = ["w1 w2 w3", "w4 w5 w6 w7", "w10 w2"]


@pytest.fixture(scope="module")
def parent_dir(reverse_data, tmp_path_factory):
    path = tmp_path_factory.mktemp("parent") / "model"
    transduce.train(tiny_config(reverse_data, path, training={"max_steps": 30,
                                                              "validate_every": 10}))
    return path


@pytest.fixture(scope="module")
def new_domain(tmp_path_factory):
    """Other pairs over the same words (a 'new domain' the parent's vocabulary covers)."""
    out = tmp_path_factory.mktemp("domain")
    write_task("reverse", out, {"train": 300, "dev": 20}, vocab=12, max_len=4, seed=9)
    return out


def _child(data, parent, path, **training):
    return tiny_config(data, path, training={"init_from": str(parent), "max_steps": 10,
                                             "validate_every": 10, **training})


def test_init_from_starts_from_the_parent_s_model(parent_dir, new_domain, tmp_path):
    trainer = Trainer(transduce.config.load_config(_child(new_domain, parent_dir,
                                                          tmp_path / "child")))
    child = Translator(trainer.model, trainer.src, trainer.tgt, trainer.cfg)
    assert child.translate(TEXTS) == transduce.load(parent_dir).translate(TEXTS)
    for name in ("vocab.src.txt", "vocab.tgt.txt"):
        assert (tmp_path / "child" / name).read_bytes() == (parent_dir / name).read_bytes()
    # everything else afresh by default
    assert trainer.state.step == 0 and trainer.state.best_score is None
    assert not trainer.optimizer.state_dict()["state"]
    trainer.train()
    assert ck.read_meta(tmp_path / "child" / md.LAST)["step"] == 10


def test_reset_nothing_keeps_the_parent_s_optimizer_schedule_position_and_record(
        parent_dir, new_domain, tmp_path):
    trainer = Trainer(transduce.config.load_config(_child(new_domain, parent_dir,
                                                          tmp_path / "child", reset=[])))
    saved = ck.load_trainer_state(parent_dir / md.LAST)
    moments = trainer.optimizer.state_dict()["state"]
    assert moments and all(torch.equal(moments[k]["exp_avg"], saved["optimizer"]["state"][k]
                                       ["exp_avg"]) for k in moments)
    assert trainer.schedule.state_dict() == saved["schedule"]
    assert (trainer.state.epoch, trainer.state.batch_in_epoch) == \
        (saved["epoch"], saved["batch_in_epoch"])
    assert trainer.state.best_score == saved["best_score"] and trainer.state.step == 0
    only_opt = Trainer(transduce.config.load_config(_child(
        new_domain, parent_dir, tmp_path / "c2", reset=["schedule", "data", "early_stopping"])))
    assert only_opt.optimizer.state_dict()["state"] and only_opt.state.best_score is None
    assert only_opt.state.epoch == 0


def test_a_changed_network_or_a_bad_parent_is_a_one_line_error(parent_dir, new_domain, tmp_path):
    cfg = _child(new_domain, parent_dir, tmp_path / "child")
    cfg["model"]["decoder_hidden_size"] = 32
    with pytest.raises(TransduceError, match="config key 'model.decoder_hidden_size' is 32 but "
                                             "the parent model .* has 24"):
        Trainer(transduce.config.load_config(cfg))
    assert not (tmp_path / "child").exists()
    with pytest.raises(TransduceError, match="neither a trained model_dir nor a checkpoint"):
        Trainer(transduce.config.load_config(_child(new_domain, tmp_path / "nowhere",
                                                    tmp_path / "c3")))
    child = Trainer(transduce.config.load_config(_child(new_domain, parent_dir / md.LAST,
                                                        tmp_path / "c4")))
    assert child.state.step == 0  # a checkpoint folder works too


def test_resuming_with_other_data_points_to_init_from(parent_dir, new_domain):
    cfg = tiny_config(new_domain, parent_dir, training={"max_steps": 40})
    with pytest.raises(TransduceError, match=r"config key 'data.train' .* training.init_from"):
        Trainer(transduce.config.load_config(cfg))
