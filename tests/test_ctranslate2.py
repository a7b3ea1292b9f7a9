"""transduce export --ctranslate2 (decode/ctranslate2.py): the export of a trained Transformer
decodes the test set as transduce does, at beam 1 (greedy) and 5, with the same scores and
attention; what it cannot take is a one-line error."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import transduce
from transduce.cli import main
from transduce.errors import TransduceError

from conftest import tiny_config

pytest.importorskip("ctranslate2")

MODEL = {"arch": "transformer", "embedding_size": 32, "heads": 4, "ff_size": 64, "layers": 2,
         "copy": False, "coverage": False}


@pytest.fixture(scope="module")
def trained(reverse_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("ct2")
    model = transduce.train(tiny_config(reverse_data, root / "model", model=MODEL,
                                        training={"max_steps": 300, "validate_every": 300,
                                                  "lr": 3e-3}))
    assert main(["export", "--ctranslate2", str(root / "model"), str(root / "export")]) == 0
    return model, transduce.load(root / "export", device="cpu"), root


def test_the_export_decodes_the_test_set_as_transduce_does(trained, reverse_data):
    model, export, _ = trained
    src = (reverse_data / "test.src").read_text().splitlines()
    for beam in (1, 5):  # beam 1: greedy search on both sides
        ours, theirs = model.search(src, beam_size=beam), export.search(src, beam_size=beam)
        same = [a[0].text == b[0].text for a, b in zip(ours, theirs)]
        # fp32 on both sides: only a near-tie that rounding flips could differ (none on this set)
        assert sum(same) >= 0.95 * len(src), (beam, sum(same), len(src))
        assert max(abs(a[0].score - b[0].score) for a, b, s in zip(ours, theirs, same)
                   if s) < 1e-4
    texts = src[:8]
    ours, theirs = model.search(texts, attention=True), export.search(texts, attention=True)
    for a, b in zip(ours, theirs):  # the last layer's cross-attention, averaged over heads
        assert torch.allclose(a[0].attention, b[0].attention, atol=1e-4)
    refs = (reverse_data / "test.tgt").read_text().splitlines()[:8]
    for a, b in zip(model.score(texts, refs), export.score(texts, refs)):  # <pad>, <s> excluded
        assert a == pytest.approx(b, abs=1e-4)


def test_what_ctranslate2_cannot_give_is_an_error(trained):
    _, export, root = trained
    for options, message in [({"prefix": "w1"}, "target prefix"),
                             ({"constraints": [["w1"]]}, "lexical constraints"),
                             ({"sampling": True}, "sampling")]:
        with pytest.raises(TransduceError, match=message):
            export.search(["w1 w2"], **options)
    with pytest.raises(TransduceError, match="drop --quantize"):
        transduce.load(root / "export", quantize="int8")
    with pytest.raises(TransduceError, match="CTranslate2 export, which decodes alone"):
        transduce.load([root / "model", root / "export"])


def test_int8_export_and_a_non_empty_output(trained, reverse_data, tmp_path, capsys):
    model, _, root = trained
    out = tmp_path / "int8"
    assert main(["export", "--ctranslate2", "--quantization", "int8", str(root / "model"),
                 str(out)]) == 0
    src = (reverse_data / "test.src").read_text().splitlines()
    same = sum(a == b for a, b in zip(model.translate(src), transduce.load(out).translate(src)))
    assert same >= 0.8 * len(src)  # int8 matrices: a few outputs may change
    capsys.readouterr()
    assert main(["export", "--ctranslate2", str(root / "model"), str(out)]) == 1
    assert "exists and is not empty" in capsys.readouterr().err


def test_tied_embeddings_and_literal_specials(tmp_path):
    """A target type spelt like a special (a literal </s> in the text) keeps its own id."""
    data = tmp_path / "data"
    data.mkdir()
    pairs = [("a b </s>", "</s> b a"), ("b <s> c", "c <s> b"), ("c a", "a c")] * 20
    for split in ("train", "dev"):
        (data / f"{split}.src").write_text("".join(s + "\n" for s, _ in pairs))
        (data / f"{split}.tgt").write_text("".join(t + "\n" for _, t in pairs))
    model = transduce.train(tiny_config(data, tmp_path / "model",
                                        model={**MODEL, "tied_embeddings": True},
                                        training={"max_steps": 40, "validate_every": 40,
                                                  "lr": 3e-3}))
    assert "</s>" in model.tgt.vocab.itos[4:]
    assert main(["export", "--ctranslate2", str(tmp_path / "model"), str(tmp_path / "ct2")]) == 0
    export = transduce.load(tmp_path / "ct2", device="cpu")
    texts = [s for s, _ in pairs[:3]] + ["a </s> <s> c"]
    for beam in (1, 3):
        assert export.translate(texts, beam_size=beam) == model.translate(texts, beam_size=beam)


def test_an_rnn_model_dir_is_refused(reverse_data, tmp_path, capsys):
    transduce.train(tiny_config(reverse_data, tmp_path / "rnn",
                                training={"max_steps": 2, "validate_every": 2}))
    assert main(["export", "--ctranslate2", str(tmp_path / "rnn"), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "model.arch is rnn" in err and "--int8" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_importing_transduce_does_not_import_ctranslate2():
    code = ("import sys, transduce, transduce.api, transduce.cli; "
            "assert 'ctranslate2' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
