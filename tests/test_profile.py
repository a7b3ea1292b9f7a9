"""The corpus profile and the ``model.copy: auto`` decision, on generated data of both kinds."""
from __future__ import annotations

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
