import logging

import numpy as np
import pytest

from transduce.data.batching import batch_indices, make_batch
from transduce.data.codec import build_codecs
from transduce.data.corpus import filter_pairs, read_lines, read_parallel
from transduce.data.tokenizers import CharTokenizer, SentencePieceTokenizer, WordTokenizer
from transduce.data.vocabulary import PAD_ID, Vocabulary
from transduce.errors import TransduceError


def test_word_and_char_round_trip():
    text = "el  gato  negro"
    assert WordTokenizer().detokenize(WordTokenizer().tokenize(text)) == "el gato negro"
    chars = CharTokenizer().tokenize(text)
    assert chars[:3] == ["e", "l", "\u2581"]
    assert CharTokenizer().detokenize(chars) == "el gato negro"


def test_sentencepiece_trains_and_round_trips(tmp_path):
    lines = [f"the cat number {i} sat on mat {i % 7}" for i in range(300)]
    tok = SentencePieceTokenizer.train(lines, tmp_path / "spm.model", vocab_size=60)
    pieces = tok.tokenize("the cat sat on the mat")
    assert len(pieces) > 1
    assert tok.detokenize(pieces) == "the cat sat on the mat"
    assert "<unk>" not in tok.pieces()


def test_line_count_mismatch_names_files_and_line(tmp_path):
    (tmp_path / "a.src").write_text("a\nb\nc\n")
    (tmp_path / "a.tgt").write_text("a\nb\n")
    with pytest.raises(TransduceError) as e:
        read_parallel(tmp_path / "a.src", tmp_path / "a.tgt")
    assert "a.tgt:3" in str(e.value) and "3 lines" in str(e.value)


def test_invalid_utf8_reports_line(tmp_path):
    (tmp_path / "a.src").write_bytes(b"ok\nfine\nbad \xff here\n")
    (tmp_path / "a.tgt").write_text("a\nb\nc\n")
    with pytest.raises(TransduceError, match=r"a\.src:3: invalid UTF-8"):
        read_parallel(tmp_path / "a.src", tmp_path / "a.tgt")


def test_missing_file(tmp_path):
    with pytest.raises(TransduceError, match="file not found"):
        read_parallel(tmp_path / "nope.src", tmp_path / "nope.tgt")


def test_filter_skips_empty_pairs_and_long_targets_and_keeps_long_sources(caplog):
    src = [["a"], [], ["a"] * 9, ["b"], ["c"]]
    tgt = [["x"], ["y"], ["z"], [], ["z"] * 6]
    keep, stats = filter_pairs(src, tgt, 5, 5, "train.src")
    assert keep == [0, 2] and stats.empty == 2 and stats.too_long == 1
    assert stats.truncated == 1  # the 9-token source, kept: the caller cuts it
    with pytest.raises(TransduceError, match="train.src:2"):
        filter_pairs(src, tgt, 5, 5, "train.src", skip=False)
    with pytest.raises(TransduceError, match="all 2 training pairs were filtered"):
        filter_pairs([[], ["a"]], [["x"], ["y"] * 9], 5, 5, "train.src")


def test_batches_cover_each_example_once_and_are_deterministic():
    rng = np.random.default_rng(0)
    src, tgt = rng.integers(1, 30, 1000), rng.integers(1, 30, 1000)
    a = batch_indices(src, tgt, batch_tokens=200, seed=3, epoch=1)
    b = batch_indices(src, tgt, batch_tokens=200, seed=3, epoch=1)
    assert all((x == y).all() for x, y in zip(a, b))
    assert sorted(np.concatenate(a).tolist()) == list(range(1000))
    for idx in a:  # budget counts padding: n * longest
        longest = max(max(src[i], tgt[i] + 1) for i in idx)
        assert len(idx) == 1 or len(idx) * longest <= 200
    c = batch_indices(src, tgt, batch_tokens=200, seed=3, epoch=2)
    assert any(len(x) != len(y) or (x != y).any() for x, y in zip(a, c))


def test_bucketing_keeps_padding_low():
    rng = np.random.default_rng(0)
    lens = rng.integers(1, 26, 20000)
    batches = batch_indices(lens, lens, batch_size=64, seed=1)
    pad = sum(len(b) * lens[b].max() - lens[b].sum() for b in batches) / (len(lens) * 1.0)
    assert pad / lens.mean() < 0.10


def test_make_batch_shapes_and_counts():
    b = make_batch([[5, 6, 7], [8]], [[9], [10, 11]])
    assert b.src.tolist() == [[5, 6, 7], [8, PAD_ID, PAD_ID]]
    assert b.tgt_in.tolist() == [[2, 9, 0], [2, 10, 11]]
    assert b.tgt_out.tolist() == [[9, 3, 0], [10, 11, 3]]
    assert b.n_tgt_tokens == 5 and b.n_pad == 1


# ---- #16 item 2: line endings, BOMs, NULs, giant tokens, SentencePiece, vocabulary limits ------
@pytest.fixture
def caplog(caplog, monkeypatch):
    """caplog that sees transduce's records even after cli.main has unset their propagation."""
    monkeypatch.setattr(logging.getLogger("transduce"), "propagate", True)
    return caplog


def _data_config(**data):
    from transduce.config import load_config

    return load_config({"data": data}).data


def test_cr_only_line_endings_are_an_error_naming_the_file_and_the_fix(tmp_path):
    (tmp_path / "mac.src").write_bytes(b"a b\rc d\re f\r")
    with pytest.raises(TransduceError) as e:
        read_lines(tmp_path / "mac.src")
    msg = str(e.value)
    assert "mac.src: the lines end in CR only" in msg and "3 CR, no LF" in msg
    assert "tr '\\r' '\\n'" in msg and "max_src_len" not in msg
    # \r\n endings and a \r inside a line of an \n file are fine
    (tmp_path / "dos.src").write_bytes(b"a b\r\nc\rd\r\n")
    assert read_lines(tmp_path / "dos.src") == ["a b", "c\rd"]


def test_byte_order_marks_inside_a_file_are_removed_with_a_warning(tmp_path, caplog):
    (tmp_path / "cat.src").write_bytes("\ufeffa b\nc\n\ufeffd e\n\ufeff\nf\ufeffg\n".encode())
    with caplog.at_level(logging.WARNING, logger="transduce"):
        lines = read_lines(tmp_path / "cat.src")
    assert lines == ["a b", "c", "d e", "", "fg"]
    assert "cat.src:3: removed 3 byte-order mark(s) (U+FEFF)" in caplog.text
    assert all("\ufeff" not in t for ln in lines for t in WordTokenizer().tokenize(ln))


def test_nul_bytes_are_refused(tmp_path):
    (tmp_path / "nul.src").write_bytes(b"\0" * 1000)
    with pytest.raises(TransduceError, match=r"nul\.src:1: NUL byte at byte 0: this is binary "
                       r"data or UTF-16/UTF-32 text"):
        read_lines(tmp_path / "nul.src")
    (tmp_path / "u16.src").write_bytes("ok\nab\n".encode("utf-16-le"))  # no BOM: valid UTF-8
    with pytest.raises(TransduceError, match=r"u16\.src:1: NUL byte at byte 1"):
        read_lines(tmp_path / "u16.src")


def test_a_giant_token_is_no_vocabulary_entry_and_the_warning_says_how_many(tmp_path, caplog):
    giant = "x" * 1_000_000
    with caplog.at_level(logging.WARNING, logger="transduce"):
        v = Vocabulary.build([["a", giant, "b"], ["y" * 101, "a"]], name="t.src")
    assert v.itos[4:] == ["a", "b"] and v.encode([giant]) == [1]
    assert "t.src: left out 2 token type(s) longer than 100 characters" in caplog.text
    assert "the longest 1000000 characters" in caplog.text
    src, _ = build_codecs(_data_config(), tmp_path, [f"a {giant}"], ["b"])
    assert max(map(len, (tmp_path / "vocab.src.txt").read_text().split("\n"))) <= 100
    assert src.vocab.itos[4:] == ["a"]


def test_min_freq_leaving_only_the_specials_is_an_error_with_the_fix(tmp_path):
    with pytest.raises(TransduceError) as e:
        build_codecs(_data_config(min_freq=5), tmp_path, ["a b", "a c"], ["x", "y"])
    msg = str(e.value)
    assert "the source training text: no token type occurs data.min_freq=5 times" in msg
    assert "the most frequent of the 3 types occurs 2" in msg and "lower data.min_freq" in msg
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_vocabulary_that_leaves_most_tokens_unknown_warns(tmp_path, caplog):
    words = [f"w{i}" for i in range(40)]
    with caplog.at_level(logging.WARNING, logger="transduce"):
        build_codecs(_data_config(max_vocab_size=8), tmp_path, [" ".join(words)] * 2, ["x"] * 2)
    assert "the vocabulary's 4 types cover 10.0% of the training tokens, the other 72 read as " \
        "<unk>" in caplog.text
    assert "raise data.max_vocab_size" in caplog.text


def test_a_blank_side_is_an_error_for_every_tokenizer(tmp_path):
    for kind in ("word", "char", "sentencepiece"):
        with pytest.raises(TransduceError, match="the target training text: every line is "
                           "blank.*check the files"):
            build_codecs(_data_config(tokenizer=kind), tmp_path, ["a b"] * 3, ["", " ", ""])
    assert not list(tmp_path.iterdir())


SPM_TEXT = [f"the quick brown fox {i} jumps over the lazy dog {i % 7}" for i in range(200)]


def test_sentencepiece_warns_with_the_number_it_built(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="transduce"):
        tok = SentencePieceTokenizer.train(SPM_TEXT, tmp_path / "m.model", vocab_size=100_000,
                                           name="t.src")
    built = tok.sp.get_piece_size()
    assert built < 1000
    assert f"t.src: SentencePiece built {built} pieces, fewer than data.vocab_size=100000" \
        in caplog.text


def test_sentencepiece_vocab_below_the_character_set_is_a_one_line_error(tmp_path):
    with pytest.raises(TransduceError) as e:
        SentencePieceTokenizer.train(SPM_TEXT, tmp_path / "m.model", vocab_size=8, name="t.src")
    msg = str(e.value)
    assert msg.startswith("t.src: data.vocab_size=8 is smaller than the ")
    assert "raise data.vocab_size to" in msg and "\n" not in msg
    need = int(msg.split("raise data.vocab_size to ")[1].split()[0])
    tok = SentencePieceTokenizer.train(SPM_TEXT, tmp_path / "m.model", vocab_size=need)
    assert tok.detokenize(tok.tokenize(SPM_TEXT[3])) == SPM_TEXT[3]  # the advice works
    for model_type in ("bpe",):
        with pytest.raises(TransduceError, match="data.vocab_size=8"):
            SentencePieceTokenizer.train(SPM_TEXT, tmp_path / "b.model", vocab_size=8,
                                         model_type=model_type)


def test_sentencepiece_lines_over_its_byte_limit(tmp_path, caplog):
    long = "word " * 2000  # 10,000 bytes
    with caplog.at_level(logging.WARNING, logger="transduce"):
        tok = SentencePieceTokenizer.train(SPM_TEXT + [long], tmp_path / "m.model", 60,
                                           name="t.src")
    assert "t.src: 1 of 201 lines are over SentencePiece's limit of 4192 bytes" in caplog.text
    assert tok.tokenize("the dog")
    with pytest.raises(TransduceError, match="t.src: every line is over SentencePiece's limit of "
                       "4192 bytes.*split the text into sentences"):
        SentencePieceTokenizer.train([long] * 3, tmp_path / "m.model", 60, name="t.src")


def test_sentencepiece_training_writes_nothing_before_both_sides_are_built(tmp_path):
    cfg = _data_config(tokenizer="sentencepiece", vocab_size=8)
    with pytest.raises(TransduceError, match="the target training text: data.vocab_size=8"):
        build_codecs(cfg, tmp_path, ["ab ba"] * 50, SPM_TEXT)
    assert not list(tmp_path.iterdir())
