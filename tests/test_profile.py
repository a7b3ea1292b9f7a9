"""The corpus profile and the ``model.copy: auto`` decision, on generated data of both kinds."""
from __future__ import annotations

import logging

from transduce.data.generate import date_pairs, rename_pairs
from transduce.data.profile import COPY_OVERLAP, decide_copy, profile


def _split(pairs):
    return [s for s, _ in pairs], [t for _, t in pairs]


def test_a_task_that_copies_names_turns_copy_and_coverage_on():
    p = profile(*_split(rename_pairs(3000, seed=3)))
    assert p.pairs == 2000 and p.overlap == 1.0 and p.length_ratio < 0.5
    copy, coverage, why = decide_copy(p)
    assert (copy, coverage) == (True, True)
    assert "100 % of target tokens occur in their source" in why


def test_a_task_that_rewrites_every_token_keeps_plain_attention():
    p = profile(*_split(date_pairs(500, seed=3)))
    assert p.overlap < COPY_OVERLAP
    assert decide_copy(p)[:2] == (False, False)


def test_names_glued_to_punctuation_count_as_copied_and_digits_do_not():
    """Code: whitespace tokens such as ``f(a,`` never recur in ``f(a: int,``, the names do."""
    src = ["def area(width, height)", "def name(self)", "def pad(text, size=4)"]
    tgt = ["def area(width: float, height: float) -> float", "def name(self) -> str",
           "def pad(text: str, size: int = 4) -> str"]
    p = profile(src, tgt)
    assert p.overlap > 0.5 and decide_copy(p)[0] is True
    assert profile(["on 12 May 2001"], ["2001-05-12"]).overlap == 0.0  # digits are not names


def test_copy_without_coverage_when_targets_are_as_long_as_sources():
    src = ["a b c d", "e f g h", "i j k l"]
    tgt = ["a b x d", "e f g y", "i z k l"]  # 75 % copied, same length
    p = profile(src, tgt)
    assert abs(p.overlap - 0.75) < 1e-9 and p.length_ratio == 1.0
    assert decide_copy(p)[:2] == (True, False)


def test_the_sample_is_fixed_by_the_seed_and_empty_pairs_are_left_out():
    src, tgt = _split(rename_pairs(5000, seed=4))
    assert profile(src, tgt) == profile(src, tgt)
    assert profile(["", "a b"], ["x", "a"]).pairs == 1


def _trainer(tmp_path, task, **model):
    from transduce.config import load_config
    from transduce.data.generate import write_task
    from transduce.training.trainer import Trainer

    data = write_task(task, tmp_path / task, {"train": 300, "dev": 20})
    cfg = load_config({"model_dir": str(tmp_path / f"model-{task}"),
                       "data": {"train": f"{data}/train", "dev": f"{data}/dev"},
                       "model": {"embedding_size": 8, "encoder_hidden_size": 8,
                                 "decoder_hidden_size": 8, **model}})
    trainer = Trainer(cfg)
    trainer._close_log()
    return trainer


def test_the_trainer_decides_copy_auto_both_ways_logs_why_and_records_it(tmp_path, caplog):
    import yaml

    with caplog.at_level(logging.INFO, logger="transduce"):
        on = _trainer(tmp_path, "rename")
        off = _trainer(tmp_path, "dates")
    assert (on.cfg.model.copy, on.cfg.model.coverage) == (True, True) and on.model.copy
    assert (off.cfg.model.copy, off.cfg.model.coverage) == (False, False) and not off.model.copy
    assert "model.copy: auto -> true, model.coverage: auto -> true (100 % of target" in caplog.text
    assert "model.copy: auto -> false" in caplog.text
    assert "model.copy: auto -> true" in (tmp_path / "model-rename" / "train.log").read_text()
    saved = yaml.safe_load((tmp_path / "model-rename" / "config.yaml").read_text())
    assert saved["model"]["copy"] is True and saved["model"]["coverage"] is True


def test_settings_the_user_gave_are_kept(tmp_path):
    t = _trainer(tmp_path, "rename", copy=True, coverage=False)
    assert (t.cfg.model.copy, t.cfg.model.coverage) == (True, False)
    t = _trainer(tmp_path, "rename", attention="dot")  # coverage needs mlp attention
    assert (t.cfg.model.copy, t.cfg.model.coverage) == (True, False)
