"""Several weighted training corpora (data.train as a list of {path, weight})."""
import numpy as np
import pytest

import transduce
from transduce.config import load_config
from transduce.data.batching import batch_indices
from transduce.data.generate import write_task
from transduce.errors import TransduceError
from transduce.training.trainer import Trainer

from conftest import tiny_config


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpora")
    write_task("reverse", root / "a", {"train": 300, "dev": 20}, vocab=12, max_len=6, seed=1)
    write_task("reverse", root / "b", {"train": 100}, vocab=12, max_len=6, seed=2)
    return root


def _config(root, tmp_path, weights, **training):
    cfg = tiny_config(root / "a", tmp_path / "model", training={"max_steps": 4, **training})
    cfg["data"]["train"] = [{"path": str(root / n / "train"), "weight": w}
                            for n, w in zip("ab", weights)]
    return load_config(cfg)


def test_an_epoch_holds_each_corpus_by_its_weight(two, tmp_path):
    trainer = Trainer(_config(two, tmp_path, [1.0, 3.0]))
    assert len(trainer.data.src) == 400
    origin = np.array([0] * 300 + [1] * 100)
    counts = np.zeros(2)
    for epoch in range(5):
        for batch in trainer._epoch_batches(epoch):
            counts += np.bincount(origin[batch], minlength=2)
    share = counts[1] / counts.sum()
    assert share == pytest.approx(300 / 600, abs=0.03)  # 100 x 3 of 300 x 1 + 100 x 3
    assert counts.sum() / 5 == pytest.approx(600, rel=0.05)


def test_fractional_weights_sample_and_whole_ones_repeat():
    lens = np.full(1000, 5)
    w = np.array([0.25] * 500 + [2.0] * 500)
    idx = np.concatenate(batch_indices(lens, lens, batch_size=64, seed=3, epoch=0, weights=w))
    counts = np.bincount(idx, minlength=1000)
    assert set(counts[500:]) == {2} and set(counts[:500]) <= {0, 1}
    assert counts[:500].sum() == pytest.approx(125, abs=30)
    same = batch_indices(lens, lens, batch_size=64, seed=3, epoch=0, weights=w)
    assert all(np.array_equal(a, b) for a, b in zip(same, batch_indices(
        lens, lens, batch_size=64, seed=3, epoch=0, weights=w)))  # deterministic
    plain = batch_indices(lens, lens, batch_size=64, seed=3, epoch=0)
    assert sorted(np.concatenate(plain).tolist()) == list(range(1000))


def test_several_corpora_train_and_a_bad_one_is_named(two, tmp_path):
    model = transduce.train(_config(two, tmp_path, [1.0, 2.0], validate_every=4).to_dict())
    assert len(model.translate(["w1 w2"])) == 1
    bad = _config(two, tmp_path / "x", [1.0, 1.0]).to_dict()
    bad["data"]["train"][1]["path"] = str(two / "nowhere")
    with pytest.raises(TransduceError, match="nowhere"):
        Trainer(load_config(bad))
    with pytest.raises(TransduceError, match="weight"):
        load_config({"data": {"train": [{"path": "a", "weight": 0}]}})
    with pytest.raises(TransduceError, match="at least one corpus"):
        load_config({"data": {"train": []}})


def test_training_without_a_dev_set_says_what_best_means(two, tmp_path, caplog):
    cfg = tiny_config(two / "a", tmp_path / "model", training={"max_steps": 2})
    cfg["data"]["dev"] = None
    Trainer(load_config(cfg))
    assert any("no data.dev" in r.message and "best/ is simply the latest" in r.message
               for r in caplog.records)
