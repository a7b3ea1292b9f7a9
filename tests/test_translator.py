"""Translator (transduce/decode/translator.py): text in, results out, and the per-call decoding
options (``DecodingConfig`` keys, checked by ``DecodingConfig.override``). A tiny model briefly
trained on the reversal task; what the search itself guarantees is in test_search.py."""
import logging

import pytest

import transduce
from transduce.decode.translator import Translator
from transduce.errors import TransduceError

from conftest import tiny_config

TEXTS = ["w1 w2 w3", "", "w4 w5 w6 w7 w8 w9", "   ", "w10", "w3 w3 w2 w1", ""]


@pytest.fixture(scope="module")
def translator(reverse_data, tmp_path_factory) -> Translator:
    return transduce.train(tiny_config(reverse_data, tmp_path_factory.mktemp("tr") / "model",
                                       training={"max_steps": 80, "validate_every": 80}))


def _with_decoding(t: Translator, **decoding) -> Translator:
    config = t.config.model_copy(update={"decoding": t.config.decoding.override(**decoding)})
    return Translator(t.model, t.src, t.tgt, config)


def _key(results):
    return [[(r.tgt_tokens, r.score) for r in nbest] for nbest in results]


def _same(a, b):
    """Equal outputs, and scores up to float noise (another batch, other padding)."""
    assert [[r.tgt_tokens for r in nbest] for nbest in a] == \
        [[r.tgt_tokens for r in nbest] for nbest in b]
    assert [r.score for nbest in a for r in nbest] == \
        pytest.approx([r.score for nbest in b for r in nbest], abs=1e-5)


def test_one_result_list_per_input_in_input_order(translator):
    results = translator.search(TEXTS, batch_size=2)  # sorted by length, in 3 batches
    assert len(results) == len(TEXTS)
    for text, nbest in zip(TEXTS, results):
        assert len(nbest) == (1 if text.strip() else 0)  # blank input: an empty list
    _same(results, [translator.search([t])[0] for t in TEXTS])
    out = translator.translate(TEXTS)
    assert out == [r[0].text if r else "" for r in results]
    assert len(out) == len(TEXTS) and all(o == "" for o, t in zip(out, TEXTS) if not t.strip())
    assert results[0][0].src_tokens == ["w1", "w2", "w3"]
    assert translator.translate([]) == [] and translator.search([""]) == [[]]


@pytest.mark.parametrize("beam_size, n_best", [(4, 3), (3, 3)])
def test_n_best_is_sorted_and_starts_with_the_one_best(translator, beam_size, n_best):
    many = translator.search(TEXTS, beam_size=beam_size, n_best=n_best)
    one = translator.search(TEXTS, beam_size=beam_size)
    one_text = translator.translate(TEXTS, beam_size=beam_size)
    for text, m, o, best in zip(TEXTS, many, one, one_text):
        if not text.strip():
            assert m == [] and o == []
            continue
        assert len(m) == n_best
        scores = [r.score for r in m]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(r.tgt_tokens) for r in m}) == n_best  # distinct hypotheses
        assert (m[0].text, m[0].score) == (o[0].text, o[0].score) and m[0].text == best


@pytest.mark.parametrize("options", [{"beam_size": 3, "n_best": 2}, {"beam_size": 1},
                                     {"sampling": True, "seed": 3}, {"max_len": 2}])
def test_attention_is_target_by_source(translator, options):
    for text, nbest in zip(TEXTS, translator.search(TEXTS, attention=True, **options)):
        for r in nbest:
            rows, cols = r.attention.shape
            assert cols == len(r.src_tokens) == len(text.split())
            assert rows in (len(r.tgt_tokens), len(r.tgt_tokens) + 1)  # + 1: the step of </s>
            assert r.attention.sum(-1).sub(1).abs().max() < 1e-5
            assert r.copy is None  # not a copy model
            if "max_len" in options:
                assert len(r.tgt_tokens) <= 2
    assert all(r.attention is None for nbest in translator.search(TEXTS) for r in nbest)


def test_over_long_inputs_are_truncated_with_one_warning(translator, caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("transduce"), "propagate", True)  # cli.main unsets it
    t = _with_decoding(translator, max_input_len=4)
    long1, long2 = "w1 w2 w3 w4 w5 w6 w7", "w9 w8 w7 w6 w5"
    texts = ["w1 w2", long1, "", long2]
    with caplog.at_level(logging.WARNING, logger="transduce"):
        results = t.search(texts)
    # distinct messages: a handler another test left on the logger may capture a record twice
    warnings = sorted({r.getMessage() for r in caplog.records if r.levelno == logging.WARNING})
    assert len(warnings) == 1
    assert ("input line 2 has 7 tokens, over decoding.max_input_len=4: truncated to 4 tokens "
            "(2 such lines in all)") in warnings[0]
    assert len(results) == 4 and results[2] == []
    assert results[1][0].src_tokens == ["w1", "w2", "w3", "w4"]
    _same([results[1], results[3]], t.search(["w1 w2 w3 w4", "w9 w8 w7 w6"]))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="transduce"):
        t.search(["w1 w2 w3 w4"])  # at the limit: no warning
    assert not caplog.records


def test_max_input_len_as_a_per_call_option(translator):
    [[r]] = translator.search(["w1 w2 w3 w4 w5"], max_input_len=2)
    assert r.src_tokens == ["w1", "w2"]


@pytest.mark.parametrize("options, message", [
    ({"beam_szie": 2}, "unknown decoding option 'beam_szie'; did you mean 'beam_size'?"),
    ({"nbest": 2}, "did you mean 'n_best'?"),
    ({"beam_size": 2, "n_best": 3}, r"n_best \(3\) cannot exceed the beam size \(2\)"),
    ({"n_best": 6}, r"n_best \(6\) cannot exceed the beam size \(3\)"),  # the config's beam
    ({"sampling": True, "n_best": 2, "beam_size": 4}, r"n_best \(2\) must be 1 when sampling"),
    ({"temperature": 0.0}, "decoding option 'temperature'"),
    ({"beam_size": "wide"}, "decoding option 'beam_size'"),
])
def test_bad_options_are_one_line_errors(translator, options, message):
    with pytest.raises(TransduceError, match=message) as e:
        translator.search(["w1 w2"], **options)
    assert "\n" not in str(e.value)
    with pytest.raises(TransduceError, match=message):
        translator.translate(["w1 w2"], **options)


def test_options_apply_to_the_call_only(translator):
    before = translator.config.decoding
    capped = translator.translate(TEXTS, max_len=1, beam_size=2)
    assert all(len(o.split()) <= 1 for o in capped)
    assert translator.config.decoding == before and before.beam_size == 3
    assert translator.translate(TEXTS, beam_size=None) == translator.translate(TEXTS)  # None: keep
    assert translator.translate(TEXTS, max_len=None) != capped


def test_a_seed_reproduces_a_sample(translator):
    texts = [f"w{i % 12} w{(i * 5) % 12} w{(i * 7) % 12}" for i in range(12)]

    def sample(**options):
        return _key(translator.search(texts, sampling=True, temperature=3.0, **options))

    assert sample(seed=7) == sample(seed=7)
    assert sample(seed=7, batch_size=5) == sample(seed=7, batch_size=5)
    assert sample(seed=7) != sample(seed=8)
    assert sample() == sample() == sample(seed=translator.config.seed)  # default: config seed
    greedy = _key(translator.search(texts, beam_size=1))
    assert sample(seed=7) != greedy
