"""Literal special strings in text (#16, item 1): ``<pad>``, ``<unk>``, ``<s>``, ``</s>`` (and the
char tokenizer's ``▁``) typed by a user are ordinary text. Text never produces a special id in any
tokenizer, the literal strings round-trip through encoding and decoding, training on them stays
finite, and vocabulary files of older runs load as before."""
from __future__ import annotations

import json
import math

import pytest
import yaml

from conftest import tiny_config
from transduce.config import load_config
from transduce.data.codec import Codec, build_codecs, encode_pairs
from transduce.data.tokenizers import SPACE, CharTokenizer, SentencePieceTokenizer, WordTokenizer
from transduce.data.vocabulary import (BOS_ID, EOS_ID, PAD_ID, SPECIALS, UNK_ID, Vocabulary,
                                       decode_ext)

CONTROL_IDS = {PAD_ID, BOS_ID, EOS_ID}
LITERAL = "x <pad> y </s> z <s> w <unk> v"


def round_trip(codec: Codec, text: str) -> tuple[list[int], str]:
    ids = codec.vocab.encode(codec.tokenize(text))
    return ids, codec.tokenizer.detokenize(codec.vocab.decode(ids))


def test_the_vocabulary_lookup_never_gives_a_special_id_to_text():
    vocab = Vocabulary.build([LITERAL.split()])
    ids = vocab.encode(LITERAL.split())
    assert not CONTROL_IDS & set(ids) and UNK_ID not in ids  # each literal is a type of its own
    assert vocab.decode(ids) == LITERAL.split()
    for special in SPECIALS:  # an ordinary type, after the four specials
        assert vocab.stoi[special] >= len(SPECIALS) and vocab.itos[vocab.stoi[special]] == special
    # unseen literals read as <unk>, like any unknown word, never as <pad>/<s>/</s>
    plain = Vocabulary.build([["a", "b"]])
    assert plain.encode(list(SPECIALS)) == [UNK_ID] * 4
    assert plain.encode(["a", "</s>", "b"]) == [4, UNK_ID, 5]


def test_word_tokenizer_round_trips_literal_specials():
    codec = Codec(WordTokenizer(), Vocabulary.build([LITERAL.split()]))
    ids, back = round_trip(codec, LITERAL)
    assert not CONTROL_IDS & set(ids) and back == LITERAL
    # "x </s> y" is three tokens, not "x" (the target is not cut at the literal)
    assert len(codec.vocab.encode(codec.tokenize("x </s> y"))) == 3


def test_char_tokenizer_round_trips_literal_specials_and_its_space_symbol():
    text = f"a <pad> b </s> c{SPACE}d"
    tok = CharTokenizer()
    codec = Codec(tok, Vocabulary.build([tok.tokenize(text)]))
    ids, back = round_trip(codec, text)
    assert not CONTROL_IDS & set(ids) and UNK_ID not in ids
    assert back == text  # the literal "▁" comes back as itself, not as a space
    assert tok.tokenize(f"a b{SPACE}")[1] != tok.tokenize(f"a b{SPACE}")[3]


@pytest.fixture(scope="module")
def spm_with_literals(tmp_path_factory) -> Codec:
    """SentencePiece trained on text full of literal specials. SentencePiece itself never
    matches its <unk> (or a control symbol) from text, and its script splitting keeps "<" apart
    from letters, so no piece is spelt like a special; if one were, the vocabulary would keep it
    as an ordinary type. This guards the whole path: text -> pieces -> ids -> text."""
    words = ["cat", "dog", "<s>", "</s>", "<pad>", "<unk>", "a<s>b", "sat", "mat"]
    lines = [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(6)) for i in range(300)]
    tok = SentencePieceTokenizer.train(lines, tmp_path_factory.mktemp("spm") / "m.model",
                                       vocab_size=40)
    return Codec(tok, Vocabulary(tok.pieces()))


def test_sentencepiece_never_gives_a_special_id_to_text_and_round_trips(spm_with_literals):
    codec = spm_with_literals
    for text in (LITERAL.replace("x", "cat").replace("y", "dog"), "<s> </s> <pad> <unk>",
                 "a<s>b cat</s>", "</s></s><pad>"):
        ids, back = round_trip(codec, text)
        assert not CONTROL_IDS & set(ids), (text, codec.tokenize(text))
        if UNK_ID not in ids:
            assert back == text
    assert all(codec.vocab.stoi[p] >= 4 for p in codec.tokenizer.pieces())


def test_copy_models_copy_an_unknown_literal_special(tmp_path):
    vocab = Vocabulary.build([["a", "b"]])
    src, tgt, ext, oovs = encode_pairs([["a", "<pad>", "</s>"]], [["</s>", "b"]], vocab, vocab,
                                       copy=True)
    assert src == [[4, UNK_ID, UNK_ID]]
    assert ext == [[4, 6, 7]] and oovs == [["<pad>", "</s>"]]  # copyable, with extended ids
    assert tgt == [[7, 5]]
    assert decode_ext([7, 4, 6, EOS_ID], vocab, oovs[0]) == ["</s>", "a", "<pad>"]


def test_old_vocabulary_files_load_with_the_same_ids(tmp_path):
    """A file written before this change (specials on lines 1-4, never again after) reads the
    same; a file with a literal special after line 4 keeps it as an ordinary type."""
    (tmp_path / "old.txt").write_text("<pad>\n<unk>\n<s>\n</s>\nw1\nw2\n", encoding="utf-8")
    old = Vocabulary.load(tmp_path / "old.txt")
    assert old.itos == [*SPECIALS, "w1", "w2"] and old.encode(["w2", "</s>"]) == [5, UNK_ID]
    new = Vocabulary(["w1", "</s>"])
    new.save(tmp_path / "new.txt")
    assert (tmp_path / "new.txt").read_text() == "<pad>\n<unk>\n<s>\n</s>\nw1\n</s>\n"
    loaded = Vocabulary.load(tmp_path / "new.txt")
    assert loaded.itos == new.itos and loaded.encode(["</s>"]) == [5]


def test_build_codecs_keeps_literal_specials_as_types(tmp_path):
    cfg = load_config({"data": {"tokenizer": "word"}}).data
    src, tgt = build_codecs(cfg, tmp_path, ["a <pad> b", "<s> c"], ["x </s> y", "z"])
    assert src.vocab.stoi["<pad>"] >= 4 and tgt.vocab.stoi["</s>"] >= 4
    ids = tgt.vocab.encode(tgt.tokenize("x </s> y"))
    assert len(ids) == 3 and not CONTROL_IDS & set(ids) and UNK_ID not in ids
    assert Vocabulary.load(tmp_path / "vocab.tgt.txt").itos == tgt.vocab.itos


def test_training_on_lines_with_literal_specials_stays_finite_and_translates_them(
        reverse_data, tmp_path):
    """One line in three holds <pad>/</s>/<s>: before, <pad> emptied the attention mask (NaN
    loss, skipped updates) and </s> cut target lines short."""
    from transduce.api import train

    src = (reverse_data / "train.src").read_text().splitlines()
    tgt = (reverse_data / "train.tgt").read_text().splitlines()
    literals = ["<pad>", "</s>", "<s>", "<unk>"]
    for i in range(0, len(src), 3):
        lit = literals[(i // 3) % 4]
        src[i] = "<pad>" if i % 2 else f"{lit} {src[i]} {lit}"  # sources of only "<pad>" too
        tgt[i] = f"{tgt[i]} {lit} {tgt[i]}"
    (tmp_path / "t.src").write_text("\n".join(src) + "\n")
    (tmp_path / "t.tgt").write_text("\n".join(tgt) + "\n")
    cfg = tiny_config(reverse_data, tmp_path / "model", training={"max_steps": 20,
                                                                  "validate_every": 20})
    cfg["data"]["train"] = str(tmp_path / "t")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    model = train(str(tmp_path / "c.yaml"))
    metrics = [json.loads(line) for line in
               (tmp_path / "model" / "metrics.jsonl").read_text().splitlines()]
    assert all(m.get("skipped_nonfinite", 0) == 0 for m in metrics)
    assert all(math.isfinite(m["loss"]) for m in metrics if "loss" in m)
    results = model.search(["<pad>", "w1 <pad> w2", "</s> w1"], beam_size=2)
    assert all(r and math.isfinite(r[0].score) for r in results)
