"""CIDEr-D and several references per hypothesis in transduce.evaluate.

The expected CIDEr-D values were computed by hand (the two-image case) or with pycocoevalcap 1.2's
``Cider().compute_score`` (the COCO caption evaluation), which ``cider_d`` reproduces to 1e-15.
"""
from __future__ import annotations

import math

import pytest

from transduce.errors import TransduceError
from transduce.evaluate import cider_d, evaluate, read_references


def test_identical_captions_of_four_words_or_more_score_the_maximum():
    caps = ["woman health worker medium skin tone", "grinning face with big eyes",
            "flag of the united kingdom"]
    assert cider_d(caps, [[c] for c in caps]) == pytest.approx(10.0)
    assert evaluate(caps, caps, ["cider"])["cider"] == pytest.approx(1000.0)


def test_hand_computed_two_images():
    # image 1: hypothesis = reference "a b": unigram and bigram cosines are 1, no 3- or 4-grams,
    #   so 10 * (1 + 1 + 0 + 0) / 4 = 5.
    # image 2: "c" against "c d": unigram cosine 1/sqrt(2) (every n-gram has idf ln 2), no
    #   bigram; lengths (bigram counts) 0 and 1 give the penalty exp(-1 / 72).
    image2 = 10 * (1 / math.sqrt(2)) * math.exp(-1 / 72) / 4
    assert cider_d(["a b", "c"], [["a b"], ["c d"]]) == pytest.approx((5 + image2) / 2)


def test_known_value_of_pycocoevalcap_with_several_references():
    hyps = ["the cat sat on the mat", "a dog"]
    refs = [["the cat sat on the mat"], ["a red dog", "the dog"]]
    assert cider_d(hyps, refs) == pytest.approx(5.945213450059091, abs=1e-12)


def test_words_are_lowercased_and_punctuation_dropped():
    refs = [["woman health worker: medium skin tone"], ["flag: St. Vincent & Grenadines"],
            ["grinning face with big eyes"]]
    plain = ["Woman health worker medium skin tone", "flag st vincent grenadines",
             "grinning face with big eyes"]
    assert cider_d(plain, refs) == pytest.approx(10.0)


def test_a_single_hypothesis_scores_zero_as_in_pycocoevalcap():
    assert cider_d(["red apple"], [["red apple"]]) == 0.0  # idf = log(1 / 1) for every n-gram


def test_a_wrong_caption_scores_zero_and_order_of_references_does_not_matter():
    refs = [["red apple", "an apple"], ["green apple", "a pear"], ["blue car"]]
    assert cider_d(["dog", "cat", "boat"], refs) == 0.0
    hyps = ["red apple", "a pear", "car"]
    assert cider_d(hyps, refs) == pytest.approx(cider_d(hyps, [r[::-1] for r in refs]))


def test_an_extra_reference_that_matches_raises_cider_bleu_and_chrf():
    hyps = ["man cook light skin tone", "woman cook", "man cook dark skin tone"]
    one = [["person cooking: light skin tone"], ["cook"], ["person cooking: dark skin tone"]]
    two = [[*r, h] for r, h in zip(one, hyps)]
    metrics = ["bleu", "chrf", "cider", "rouge"]
    single, multi = evaluate(hyps, one, metrics), evaluate(hyps, two, metrics)
    assert multi["bleu"] == pytest.approx(100.0) and multi["chrf"] == pytest.approx(100.0)
    assert multi["rougeL"] == pytest.approx(100.0)
    assert single["rougeL"] < 100.0
    assert multi["cider"] > single["cider"] > 0
    assert "nrefs:2" in multi["signature"]["bleu"]


def test_reference_counts_may_differ_per_hypothesis():
    hyps = ["a b c d", "e f g h"]
    mixed = evaluate(hyps, [["a b c d"], ["x y", "e f g h"]], ["bleu", "cider"])
    assert mixed["bleu"] == pytest.approx(100.0)
    assert "nrefs:var" in mixed["signature"]["bleu"]
    as_strings = evaluate(hyps, ["a b c d", "e f g h"], ["cider"])["cider"]
    as_lists = evaluate(hyps, [["a b c d"], ["e f g h"]], ["cider"])["cider"]
    assert as_strings == as_lists


def test_a_hypothesis_without_references_is_refused():
    with pytest.raises(TransduceError, match="reference 2: give a string or a non-empty list"):
        evaluate(["a", "b"], [["a"], []], ["cider"])


def test_read_references_transposes_files_and_skips_empty_extra_lines(tmp_path):
    (tmp_path / "ref1").write_text("grinning face\nred apple\n")
    (tmp_path / "ref2").write_text("smiley\n\n")
    assert read_references([tmp_path / "ref1", tmp_path / "ref2"]) == [
        ["grinning face", "smiley"], ["red apple"]]
    (tmp_path / "ref3").write_text("one line\n")
    with pytest.raises(TransduceError, match="ref3: 1 lines but .*ref1 has 2; reference files"):
        read_references([tmp_path / "ref1", tmp_path / "ref3"])
