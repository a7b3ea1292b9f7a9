"""Property-based tests (hypothesis): tokenizers round-trip, vocabularies encode/decode and save/
load, batches cover every example exactly once within their budget, files keep their line count,
and translation returns exactly one output per input."""
from __future__ import annotations

import string
import unicodedata

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from transduce.data.batching import batch_cost, batch_indices, make_batch
from transduce.data.corpus import read_lines
from transduce.data.tokenizers import (LITERAL_SPACE, CharTokenizer, SentencePieceTokenizer,
                                       WordTokenizer)
from transduce.data.vocabulary import EOS_ID, SPECIALS, UNK, Vocabulary

FAST = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=25, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def normalized(text: str) -> str:
    """What every tokenizer promises to give back: whitespace runs as one space, trimmed."""
    return " ".join(text.split())


# Any Unicode text (the char tokenizer's space symbol U+2581 "▁" included: a literal one is
# escaped and comes back as itself).
any_text = st.text(max_size=60)
char_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


# ---- tokenizers ---------------------------------------------------------------------------------
@FAST
@given(any_text)
def test_word_tokenizer_round_trips_any_text(text):
    tok = WordTokenizer()
    tokens = tok.tokenize(text)
    assert all(t and not any(c.isspace() for c in t) for t in tokens)
    assert tok.detokenize(tokens) == normalized(text)


@FAST
@given(char_text)
def test_char_tokenizer_round_trips_any_text(text):
    tok = CharTokenizer()
    tokens = tok.tokenize(text)
    assert all((len(t) == 1 or t == LITERAL_SPACE) and not t.isspace() for t in tokens)
    assert tok.detokenize(tokens) == normalized(text)


@FAST
@given(char_text)
def test_lowercasing_tokenizers_round_trip_to_the_lowercased_text(text):
    assert CharTokenizer(lowercase=True).detokenize(CharTokenizer(lowercase=True).tokenize(
        text)) == normalized(text).lower()
    assert WordTokenizer(lowercase=True).detokenize(WordTokenizer(lowercase=True).tokenize(
        text)) == normalized(text.lower())


# SentencePiece normalises text (NFKC) and knows only the characters it was trained on: the
# round trip holds for text over its training alphabet that NFKC leaves alone.
SPM_ALPHABET = string.ascii_letters + string.digits + "éñüßçøå.,!?'-" + "日本語中文"
assert all(unicodedata.normalize("NFKC", c) == c for c in SPM_ALPHABET)


@pytest.fixture(scope="module")
def spm(tmp_path_factory) -> SentencePieceTokenizer:
    rng = np.random.default_rng(0)
    chars = list(SPM_ALPHABET)
    lines = [" ".join("".join(rng.choice(chars, rng.integers(1, 8))) for _ in range(6))
             for _ in range(400)]
    lines.append(SPM_ALPHABET)  # every character seen at least once
    return SentencePieceTokenizer.train(lines, tmp_path_factory.mktemp("spm") / "m.model",
                                        vocab_size=120)


@SLOW
@given(text=st.text(alphabet=SPM_ALPHABET + " \t", max_size=50))
def test_sentencepiece_round_trips_text_over_its_alphabet(spm, text):
    assert spm.detokenize(spm.tokenize(text)) == normalized(text)


# ---- vocabulary ---------------------------------------------------------------------------------
token = st.text(min_size=1, max_size=6).filter(
    lambda t: not any(c.isspace() for c in t) and t not in SPECIALS)
sentences = st.lists(st.lists(token, max_size=8), min_size=1, max_size=20)


@FAST
@given(sentences)
def test_vocabulary_encode_decode_round_trips_known_tokens(sents):
    vocab = Vocabulary.build(sents)
    for s in sents:
        ids = vocab.encode(s)
        assert vocab.decode(ids) == s
        assert vocab.decode(ids + [EOS_ID] + ids) == s  # decoding stops at </s>


@FAST
@given(sentences, st.integers(5, 12), st.integers(1, 3))
def test_vocabulary_limits_map_the_rest_to_unk(sents, max_size, min_freq):
    vocab = Vocabulary.build(sents, min_freq=min_freq, max_size=max_size)
    assert len(vocab) <= max_size and vocab.itos[:4] == list(SPECIALS)
    for s in sents:
        assert vocab.decode(vocab.encode(s)) == [t if t in vocab.stoi else UNK for t in s]


@FAST
@given(sentences)
def test_vocabulary_save_load_round_trips(tmp_path_factory, sents):
    path = tmp_path_factory.mktemp("vocab") / "v.txt"
    vocab = Vocabulary.build(sents)
    vocab.save(path)
    assert Vocabulary.load(path).itos == vocab.itos


def test_literal_special_symbols_in_text_survive():
    vocab = Vocabulary.build([["a", "</s>", "b"]])
    assert vocab.decode(vocab.encode(["a", "</s>", "b"])) == ["a", "</s>", "b"]


@FAST
@given(st.lists(st.lists(st.one_of(token, st.sampled_from(SPECIALS)), max_size=8), min_size=1,
                max_size=20))
def test_text_never_encodes_to_pad_bos_or_eos_and_round_trips(sents):
    """Whatever the strings, literal specials included, encoding gives ordinary ids (or <unk>
    for none here: every token was seen) and decoding gives the strings back."""
    vocab = Vocabulary.build(sents)
    for s in sents:
        ids = vocab.encode(s)
        assert all(i >= len(SPECIALS) for i in ids)
        assert vocab.decode(ids) == s


# ---- batching -----------------------------------------------------------------------------------
lengths = st.lists(st.tuples(st.integers(1, 300), st.integers(1, 300)), min_size=1,
                   max_size=300)


@FAST
@given(lengths, st.integers(20, 3000), st.sampled_from([0.0, 0.01, 0.2, 1.0]),
       st.integers(0, 5), st.integers(0, 5), st.one_of(st.none(), st.integers(1, 40)))
def test_token_batches_cover_each_example_once_within_budget(pairs, budget, att, seed, epoch,
                                                             max_sentences):
    src = np.array([p[0] for p in pairs])
    tgt = np.array([p[1] for p in pairs])
    batches = batch_indices(src, tgt, batch_tokens=budget, att_cost=att, seed=seed,
                            epoch=epoch, max_sentences=max_sentences)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(pairs)))  # each example exactly once
    for b in batches:
        cost = batch_cost(len(b), int(src[b].max()), int(tgt[b].max()) + 1, att)
        # over the budget only as a single example that is over it on its own
        assert cost <= budget or len(b) == 1
        assert max_sentences is None or len(b) <= max_sentences
    again = batch_indices(src, tgt, batch_tokens=budget, att_cost=att, seed=seed, epoch=epoch,
                          max_sentences=max_sentences)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))  # (seed, epoch) decide


@FAST
@given(lengths, st.integers(1, 100), st.integers(0, 5))
def test_sentence_batches_cover_each_example_once(pairs, batch_size, seed):
    src = np.array([p[0] for p in pairs])
    tgt = np.array([p[1] for p in pairs])
    batches = batch_indices(src, tgt, batch_size=batch_size, seed=seed)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(pairs)))
    assert all(1 <= len(b) <= batch_size for b in batches)


@FAST
@given(st.lists(st.lists(st.integers(4, 50), min_size=1, max_size=12), min_size=1,
                max_size=10))
def test_padded_batch_counts_tokens_and_padding(seqs):
    b = make_batch(seqs, seqs)
    assert b.n_tgt_tokens == sum(len(s) + 1 for s in seqs)
    assert b.n_tgt_tokens + b.n_pad == b.tgt_out.numel()
    assert b.src_lens.tolist() == [len(s) for s in seqs]


# ---- files: one line in, one line out -----------------------------------------------------------
# NUL bytes are refused and byte-order marks removed (tests/test_data.py): not in the lines here
line = st.text(alphabet=st.characters(blacklist_characters="\n\0\ufeff",
                                      blacklist_categories=("Cs",)), max_size=30)


@FAST
@given(st.lists(line, max_size=30), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_read_lines_keeps_one_entry_per_line(tmp_path_factory, lines, ending, bom):
    """Only "\\n" ends a line: \\r, \\x0b, \\x0c, \\x1c-\\x1e, \\x85, \\u2028 and \\u2029 (which
    str.splitlines() would split on) stay inside it, so line i of the source is line i of the
    output. Each line comes back stripped."""
    path = tmp_path_factory.mktemp("lines") / "f.txt"
    path.write_bytes((("\ufeff" if bom else "") + "".join(x + ending for x in lines))
                     .encode("utf-8"))
    got = read_lines(path)
    assert got == [x.strip() for x in lines]


# ---- translation: exactly one output per input --------------------------------------------------
@pytest.fixture(scope="module")
def translator():
    import torch

    from transduce.config import load_config
    from transduce.data.codec import Codec
    from transduce.decode.translator import Translator
    from transduce.model.seq2seq import build_model

    torch.manual_seed(0)
    cfg = load_config({"model": {"embedding_size": 8, "encoder_hidden_size": 8,
                                 "decoder_hidden_size": 8, "dropout": 0.0},
                       "decoding": {"max_len_a": 0.0, "max_len_b": 4, "batch_size": 3},
                       "data": {"max_src_len": 5}})
    vocab = Vocabulary(list("abcdef"))
    model = build_model(cfg.model, len(vocab), len(vocab))
    return Translator(model, Codec(CharTokenizer(), vocab), Codec(CharTokenizer(), vocab), cfg)


@SLOW
@given(st.lists(st.text(max_size=30), max_size=8), st.integers(1, 3), st.integers(1, 4))
def test_translate_gives_one_output_per_input(translator, texts, beam, batch_size):
    assume(all("\n" not in t for t in texts))
    out = translator.translate(texts, beam_size=beam, batch_size=batch_size)
    assert len(out) == len(texts)
    assert all(o == "" for o, t in zip(out, texts) if not t.strip())
    assert all("\n" not in o for o in out)
