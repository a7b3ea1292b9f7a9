"""Lexically constrained decoding (decode/constraints.py): every output holds every target
phrase asked for, at any beam size, for word and copy models; constraints that cannot be met are
one-line errors; no constraints is plain beam search. A tiny model briefly trained on the
reversal task."""
import pytest

import transduce
from transduce.cli import main
from transduce.decode.constraints import Progress, advance, met
from transduce.decode.translator import Translator
from transduce.errors import TransduceError

from conftest import tiny_config

TEXTS = ["w1 w2 w3", "w4 w5 w6 w7 w8 w9", "w10", "w3 w3 w2 w1", "w7 w8", "w2 w9 w9 w4"]
# one phrase, two, a phrase of a repeated token, an unlikely token, none, a phrase and its start
CONSTRAINTS = [["w9 w9"], ["w1", "w2 w3"], ["w5 w5 w5"], ["w11"], [], ["w4 w9", "w4"]]


@pytest.fixture(scope="module")
def translator(reverse_data, tmp_path_factory) -> Translator:
    return transduce.train(tiny_config(reverse_data, tmp_path_factory.mktemp("cons") / "model",
                                       training={"max_steps": 80, "validate_every": 80}))


def _holds(tokens: list[str], phrase: str) -> bool:
    p = phrase.split()
    return any(tokens[i:i + len(p)] == p for i in range(len(tokens) - len(p) + 1))


def test_progress_counts_a_phrase_only_when_its_tokens_come_in_a_row():
    phrases = [[5, 6, 7], [9]]
    p = Progress()
    for tok in (5, 6):
        p = advance(p, phrases, tok)
    assert (p.phrase, p.pos, met(p, phrases)) == (0, 2, 2)
    p = advance(p, phrases, 5)  # breaks the phrase, and starts it again
    assert (p.phrase, p.pos, p.done) == (0, 1, frozenset())
    p = advance(p, phrases, 9)  # breaks it, and completes the one-token phrase
    assert (p.phrase, p.done, met(p, phrases)) == (-1, frozenset({1}), 1)
    for tok in (5, 6, 7):
        p = advance(p, phrases, tok)
    assert p.done == {0, 1} and met(p, phrases) == 4
    assert advance(p, phrases, 9) == p  # a phrase already produced starts nothing


@pytest.mark.parametrize("beam", [1, 2, 5])
def test_every_output_holds_every_constraint(translator, beam):
    results = translator.search(TEXTS, beam_size=beam, n_best=beam, constraints=CONSTRAINTS)
    for phrases, nbest in zip(CONSTRAINTS, results):
        assert nbest
        for r in nbest:
            assert all(_holds(r.tgt_tokens, p) for p in phrases), (phrases, r.tgt_tokens)
        assert [r.score for r in nbest] == sorted((r.score for r in nbest), reverse=True)


def test_constraints_that_need_the_whole_length_are_met_exactly(translator):
    out = translator.translate(["w1"], constraints=[["w2 w2", "w3"]], max_len=3)
    assert sorted(out[0].split()) == ["w2", "w2", "w3"]


def test_no_constraints_is_plain_beam_search(translator):
    free = translator.search(TEXTS, beam_size=4, n_best=4)
    none = translator.search(TEXTS, beam_size=4, n_best=4, constraints=[[] for _ in TEXTS])
    assert [[r.tgt_tokens for r in nb] for nb in none] == [[r.tgt_tokens for r in nb]
                                                          for nb in free]
    assert [r.score for nb in none for r in nb] == pytest.approx(
        [r.score for nb in free for r in nb], abs=1e-5)


def test_constraints_that_cannot_be_met_are_one_line_errors(translator):
    with pytest.raises(TransduceError, match="constraints are 4 target tokens, over "
                                             "decoding.max_len=3"):
        translator.translate(["w1"], constraints=[["w2 w2 w2", "w1"]], max_len=3)
    with pytest.raises(TransduceError, match="'zzz', outside the target vocabulary"):
        translator.translate(["w1"], constraints=[["zzz"]])
    with pytest.raises(TransduceError, match="one list of target phrases per input"):
        translator.translate(["w1", "w2"], constraints=[["w1"]])
    with pytest.raises(TransduceError, match="one list of target phrases per input"):
        translator.translate(["w1"], constraints=["w1"])
    with pytest.raises(TransduceError, match="not sampling"):
        translator.translate(["w1"], constraints=[["w1"]], sampling=True)


def test_translate_reads_constraints_from_tab_separated_columns(translator, tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("w1 w2 w3\tw7 w7\tw10\nw4 w5\n")
    assert main(["translate", str(translator.config.model_dir), "-i", str(src),
                 "--constraints"]) in (0, None)
    first, second = capsys.readouterr().out.splitlines()
    assert _holds(first.split(), "w7 w7") and _holds(first.split(), "w10")
    assert second == translator.translate(["w4 w5"])[0]


def test_a_copy_model_copies_a_constraint_outside_its_vocabulary(reverse_data, tmp_path):
    model = transduce.train(tiny_config(reverse_data, tmp_path / "copy",
                                        model={"copy": True},
                                        training={"max_steps": 40, "validate_every": 40}))
    out = model.search(["w1 zebra w2"], beam_size=3, constraints=[["zebra w1"]])[0][0]
    assert _holds(out.tgt_tokens, "zebra w1")
    with pytest.raises(TransduceError, match="'okapi', outside the target vocabulary"):
        model.translate(["w1 zebra"], constraints=[["okapi"]])
