"""Vocabulary (transduce/data/vocabulary.py): specials, building, the file, and the extended
vocabulary of copy models. Property-based round trips are in test_properties.py."""
import pytest
import torch

from transduce.data import vocabulary
from transduce.data.vocabulary import (BOS_ID, EOS_ID, PAD_ID, SPECIALS, UNK, UNK_ID,
                                       Vocabulary)
from transduce.errors import TransduceError

VOCAB = Vocabulary(["a", "b", "c"])  # ids 4, 5, 6; size 7


def test_vocabulary_specials_min_freq_max_size_and_file(tmp_path):
    v = Vocabulary.build([["a", "b", "a"], ["c", "a", "b"]], min_freq=2)
    assert v.itos[:4] == ["<pad>", "<unk>", "<s>", "</s>"]
    assert v.itos[4:] == ["a", "b"]
    assert v.encode(["a", "z"]) == [4, UNK_ID]
    assert v.decode([4, 5, EOS_ID, 4]) == ["a", "b"]
    assert len(Vocabulary.build([["a", "b", "c"]], max_size=5)) == 5
    v.save(tmp_path / "v.txt")
    assert Vocabulary.load(tmp_path / "v.txt").itos == v.itos


def test_build_ranks_by_frequency_then_alphabetically_whatever_the_input_order():
    lines = [["b", "a", "d", "c", "c"], ["d", "e"]]
    v = Vocabulary.build(lines)
    assert v.itos[4:] == ["c", "d", "a", "b", "e"]  # counts 2, 2, 1, 1, 1
    assert Vocabulary.build([list(reversed(t)) for t in reversed(lines)]).itos == v.itos
    assert Vocabulary.build(lines, max_size=6).itos[4:] == ["c", "d"]  # the most frequent kept


def test_specials_keep_ids_0_to_3_and_text_never_reaches_them():
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    v = Vocabulary(["x", "<unk>", "x", "</s>", "y"])
    # a token spelt like a special is an ordinary type (#16): literal text, not the symbol
    assert v.itos == [*SPECIALS, "x", "<unk>", "</s>", "y"]
    assert [v.stoi[t] for t in v.itos[4:]] == list(range(4, len(v)))  # each type once
    assert v.encode(["<pad>", "<s>", "</s>", "<unk>"]) == [UNK_ID, UNK_ID, 6, 5]
    assert Vocabulary.build([["</s>", "a", "<pad>"]]).itos == [*SPECIALS, "</s>", "<pad>", "a"]
    assert Vocabulary.build([["a", "b"]], max_size=2).itos == list(SPECIALS)  # never below 4


def test_decode_drops_pad_and_bos_stops_at_eos_and_takes_tensors():
    assert VOCAB.decode([BOS_ID, 4, PAD_ID, 5, EOS_ID, 6]) == ["a", "b"]
    assert VOCAB.decode(torch.tensor([6, UNK_ID, PAD_ID])) == ["c", UNK]
    assert VOCAB.decode([]) == []


def test_load_names_a_missing_or_corrupt_file(tmp_path):
    with pytest.raises(TransduceError, match="vocabulary file missing"):
        Vocabulary.load(tmp_path / "nope.txt")
    (tmp_path / "bad.txt").write_text("<unk>\n<pad>\n<s>\n</s>\na\n", encoding="utf-8")
    with pytest.raises(TransduceError, match=r"bad\.txt: line 1-4 must be <pad> <unk> <s> </s>"):
        Vocabulary.load(tmp_path / "bad.txt")
    (tmp_path / "twice.txt").write_text("<pad>\n<unk>\n<s>\n</s>\na\nb\na\n", encoding="utf-8")
    with pytest.raises(TransduceError, match=r"twice\.txt: a token appears twice"):
        Vocabulary.load(tmp_path / "twice.txt")  # ids after it would shift


def test_file_keeps_every_id_including_non_ascii_tokens(tmp_path):
    v = Vocabulary(["é", "日本", "\u2581de", "-"])
    v.save(tmp_path / "v.txt")
    loaded = Vocabulary.load(tmp_path / "v.txt")
    assert loaded.stoi == v.stoi and len(loaded) == 8


# ---- the extended vocabulary of copy models ---------------------------------------------------
def test_extended_ids_number_source_oovs_in_order():
    ids, oovs = vocabulary.source_ext_ids(["a", "zz", "b", "yy", "zz"], VOCAB)
    assert ids == [4, 7, 5, 8, 7]
    assert oovs == ["zz", "yy"]
    # copyable target OOVs get their extended id, others <unk>
    assert vocabulary.target_ext_ids(["yy", "c", "qq", "zz"], VOCAB, oovs) == [8, 6, UNK_ID, 7]
    assert vocabulary.decode_ext([8, 4, 7, 3, 5], VOCAB, oovs) == ["yy", "a", "zz"]


def test_copying_the_whole_source_gives_it_back():
    src = ["zz", "a", "qq", "zz", "c", "ww"]
    ids, oovs = vocabulary.source_ext_ids(src, VOCAB)
    assert vocabulary.decode_ext(ids, VOCAB, oovs) == src
    assert vocabulary.target_ext_ids(src, VOCAB, oovs) == ids  # every target token copyable


def test_extended_ids_restart_per_sentence_and_need_no_oovs():
    assert vocabulary.source_ext_ids(["qq"], VOCAB) == ([7], ["qq"])
    assert vocabulary.source_ext_ids(["b", "c"], VOCAB) == ([5, 6], [])
    assert vocabulary.target_ext_ids(["b", "qq"], VOCAB, []) == VOCAB.encode(["b", "qq"])


def test_decode_ext_as_decode_plus_copies():
    oovs = ["zz"]
    # <s> and <pad> dropped, stop at </s>; an extended id past this sentence's OOVs (a padded
    # batch's column for another sentence's OOV) reads as <unk>
    assert vocabulary.decode_ext([BOS_ID, 4, PAD_ID, 7, 8, EOS_ID, 5], VOCAB, oovs) == \
        ["a", "zz", UNK]
    assert vocabulary.decode_ext([4, 5, 6], VOCAB, []) == VOCAB.decode([4, 5, 6])
