import numpy as np
import pytest

from transduce.data.batching import batch_indices, make_batch
from transduce.data.corpus import filter_pairs, read_parallel
from transduce.data.tokenizers import CharTokenizer, SentencePieceTokenizer, WordTokenizer
from transduce.data.vocabulary import PAD_ID
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


def test_filter_skips_empty_and_long_pairs_and_counts(caplog):
    src = [["a"], [], ["a"] * 9, ["b"]]
    tgt = [["x"], ["y"], ["z"], []]
    keep, stats = filter_pairs(src, tgt, 5, 5, "train.src")
    assert keep == [0] and stats.empty == 2 and stats.too_long == 1
    with pytest.raises(TransduceError, match="train.src:2"):
        filter_pairs(src, tgt, 5, 5, "train.src", skip=False)
    with pytest.raises(TransduceError, match="all 2 training pairs were filtered"):
        filter_pairs([[], ["a"] * 9], [["x"], ["y"]], 5, 5, "train.src")


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
