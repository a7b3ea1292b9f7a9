"""data.spm_model and data.vocab_file: an existing SentencePiece model or vocabulary instead of
one trained or built from the training text (data/codec.py, data/vocabulary.py)."""
import logging
import re

import pytest

import transduce
from transduce.config import DataConfig, load_config
from transduce.data.codec import build_codecs
from transduce.data.tokenizers import SentencePieceTokenizer
from transduce.data.vocabulary import SPECIALS
from transduce.errors import TransduceError

from conftest import tiny_config

SRC = ["the cat sat on the mat", "a dog ran in the park", "the bird flew over the house"] * 20
TGT = ["le chat", "un chien", "un oiseau"] * 20


@pytest.fixture(scope="module")
def spm_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("spm") / "given.model"
    SentencePieceTokenizer.train(SRC + TGT, path, vocab_size=30)
    return path


def _data(**keys) -> DataConfig:
    return DataConfig(train="unused", **keys)


def test_a_given_sentencepiece_model_is_used_and_copied_into_the_model_dir(spm_file, tmp_path):
    src, tgt = build_codecs(_data(tokenizer="sentencepiece", spm_model=str(spm_file)), tmp_path,
                            SRC, TGT)
    for side in ("src", "tgt"):
        assert (tmp_path / f"spm.{side}.model").read_bytes() == spm_file.read_bytes()
    given = SentencePieceTokenizer(spm_file)
    assert src.tokenizer.tokenize(SRC[0]) == given.tokenize(SRC[0])
    assert src.vocab.itos[len(SPECIALS):] == given.pieces() == tgt.vocab.itos[len(SPECIALS):]


def test_a_model_for_one_side_only_leaves_the_other_side_as_configured(spm_file, tmp_path):
    cfg = _data(src_tokenizer="word", tgt_tokenizer="sentencepiece",
                spm_model={"tgt": str(spm_file)})
    src, tgt = build_codecs(cfg, tmp_path, SRC, TGT)
    assert not (tmp_path / "spm.src.model").exists()
    assert (tmp_path / "spm.tgt.model").read_bytes() == spm_file.read_bytes()
    assert "cat" in src.vocab.stoi


def test_a_vocabulary_file_in_each_common_format(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("chat\nle\nun\n")
    counts = tmp_path / "dict.txt"  # fairseq dict.txt: "token count"; spm .vocab: "piece\tscore"
    counts.write_text("the 40\ncat 20\n")
    (tmp_path / "out").mkdir()
    src, tgt = build_codecs(_data(vocab_file={"src": str(counts), "tgt": str(plain)}),
                            tmp_path / "out", SRC, TGT)
    assert src.vocab.itos[len(SPECIALS):] == ["the", "cat"]
    assert tgt.vocab.itos[len(SPECIALS):] == ["chat", "le", "un"]
    # transduce's own vocab.tgt.txt (specials first) reads back as the same vocabulary
    again = tmp_path / "again"
    again.mkdir()
    _, tgt2 = build_codecs(_data(vocab_file={"tgt": str(tmp_path / "out" / "vocab.tgt.txt")}),
                           again, SRC, TGT)
    assert tgt2.vocab.itos == tgt.vocab.itos


def test_a_vocabulary_that_misses_most_tokens_is_a_warning(tmp_path, caplog):
    words = tmp_path / "words.txt"
    words.write_text("unrelated\nwords\n")
    with caplog.at_level(logging.WARNING, logger="transduce"):
        build_codecs(_data(vocab_file={"src": str(words)}), tmp_path, SRC, TGT)
    assert "more than half of the src training tokens" in caplog.text


@pytest.mark.parametrize("text, message", [
    ("a\n\nb\n", ":2: blank line"),
    ("a\nb\na 3\n", ":3: 'a' appears again (first on line 1)"),
    ("", "no tokens"),
])
def test_a_bad_vocabulary_file_names_the_line(tmp_path, text, message):
    path = tmp_path / "v.txt"
    path.write_text(text)
    with pytest.raises(TransduceError, match=re.escape(message)) as e:
        build_codecs(_data(vocab_file=str(path)), tmp_path, SRC, TGT)
    assert str(e.value).startswith(str(path))


def test_missing_or_wrong_files_are_one_line_errors(tmp_path, spm_file):
    with pytest.raises(TransduceError, match=r"no such file \(data.vocab_file\)"):
        build_codecs(_data(vocab_file=str(tmp_path / "nope.txt")), tmp_path, SRC, TGT)
    with pytest.raises(TransduceError, match=r"no such file \(data.spm_model\)"):
        build_codecs(_data(tokenizer="sentencepiece", spm_model=str(tmp_path / "nope.model")),
                     tmp_path, SRC, TGT)
    not_spm = tmp_path / "x.vocab"
    not_spm.write_text("▁the\t-1.0\n")
    with pytest.raises(TransduceError, match="not a SentencePiece model"):
        build_codecs(_data(tokenizer="sentencepiece", spm_model=str(not_spm)), tmp_path, SRC,
                     TGT)
    assert not list(tmp_path.glob("vocab.*")) and not list(tmp_path.glob("spm.*"))


@pytest.mark.parametrize("data, message", [
    ({"spm_model": "a.model"}, "whose tokenizer is word"),
    ({"tokenizer": "sentencepiece", "shared_vocab": True,
      "spm_model": {"src": "a.model", "tgt": "b.model"}}, "one data.spm_model for both sides"),
])
def test_inconsistent_keys_are_config_errors(data, message, tmp_path):
    with pytest.raises(TransduceError, match=message):
        load_config({"model_dir": str(tmp_path), "data": {"train": "x", **data}})


def test_training_with_the_parent_s_vocabularies(reverse_data, tmp_path):
    """A second model trained on the first one's vocabulary files has the same vocabularies."""
    first = tmp_path / "first"
    transduce.train(tiny_config(reverse_data, first, training={"max_steps": 2}))
    second = tmp_path / "second"
    transduce.train(tiny_config(reverse_data, second, training={"max_steps": 2}, data={
        "vocab_file": {"src": str(first / "vocab.src.txt"), "tgt": str(first / "vocab.tgt.txt")},
        "min_freq": 5}))
    for side in ("src", "tgt"):
        assert (second / f"vocab.{side}.txt").read_bytes() == \
            (first / f"vocab.{side}.txt").read_bytes()
