"""Decoding controls: a forced target prefix, forced decoding (``score``), and every decoding key
reachable from the command line (``--set decoding.KEY=VALUE``). A tiny model briefly trained on
the reversal task."""
import argparse
import math

import pytest
import torch

import transduce
from transduce.cli import build_parser, main
from transduce.cli.common import decode_options
from transduce.config import DecodingConfig
from transduce.decode.translator import Translator
from transduce.errors import TransduceError

from conftest import tiny_config

TEXTS = ["w1 w2 w3", "w4 w5 w6 w7 w8 w9", "w10", "w3 w3 w2 w1", "w7 w8"]


@pytest.fixture(scope="module")
def translator(reverse_data, tmp_path_factory) -> Translator:
    return transduce.train(tiny_config(reverse_data, tmp_path_factory.mktemp("dc") / "model",
                                       training={"max_steps": 80, "validate_every": 80}))


def test_an_output_s_own_start_as_prefix_gives_that_output(translator):
    """Greedy only: a beam forced through one prefix keeps k continuations of it where the free
    beam kept a mix, so it may end elsewhere (as it should)."""
    free = translator.search(TEXTS, beam_size=1)
    starts = [" ".join(r[0].tgt_tokens[:2]) for r in free]
    forced = translator.search(TEXTS, beam_size=1, prefix=starts)
    assert [r[0].tgt_tokens for r in forced] == [r[0].tgt_tokens for r in free]
    assert [r[0].score for r in forced] == pytest.approx([r[0].score for r in free], abs=1e-5)


@pytest.mark.parametrize("beam", [1, 3])
def test_every_output_starts_with_the_prefix(translator, beam):
    for prefix in ("w9 w9 w9", "w1"):
        for nbest in translator.search(TEXTS, beam_size=beam, n_best=beam, prefix=prefix):
            assert len(nbest) == beam
            assert all(r.tgt_tokens[:len(prefix.split())] == prefix.split() for r in nbest)
    with pytest.raises(TransduceError, match="2 prefixes for 5 inputs"):
        translator.search(TEXTS, prefix=["w1", "w2"])


def test_a_prefix_longer_than_the_length_limit_is_kept_whole(translator):
    out = translator.translate(["w1"], prefix="w2 w2 w2 w2 w2 w2 w2 w2", max_len=3)
    assert out[0].split()[:8] == ["w2"] * 8


def test_score_equals_greedy_s_log_probability(translator):
    results = translator.search(TEXTS, beam_size=1)
    ended = [i for i, r in enumerate(results) if len(r[0].tgt_tokens) < 10]  # ended by </s>
    assert ended
    scored = translator.score([TEXTS[i] for i in ended],
                              [results[i][0].text for i in ended])
    for i, (logprob, per_token) in zip(ended, scored):
        assert logprob == pytest.approx(results[i][0].score, abs=1e-4)
        assert per_token == pytest.approx(logprob / (len(results[i][0].tgt_tokens) + 1))
    assert all(lp < 0 for lp, _ in scored)


def test_score_ranks_the_right_target_above_a_wrong_one(translator):
    right, wrong = translator.score(["w1 w2 w3", "w1 w2 w3"], ["w3 w2 w1", "w8 w8 w8 w8 w8"])
    assert right[0] > wrong[0]
    empty, one = translator.score(["", "w1"], ["w1", "w1"])
    assert math.isnan(empty[0]) and one[0] == pytest.approx(translator.score(["w1"], ["w1"])[0][0])


def test_score_cli_writes_one_line_per_pair(translator, reverse_data, tmp_path, capsys):
    out = tmp_path / "scores.tsv"
    src, ref = reverse_data / "dev.src", reverse_data / "dev.tgt"
    assert main(["score", str(translator.config.model_dir), "--src", str(src), "--ref", str(ref),
                 "-o", str(out)]) in (0, None)
    lines = out.read_text().splitlines()
    assert len(lines) == len(src.read_text().splitlines())
    logprob, per_token = map(float, lines[0].split("\t"))
    assert logprob < 0 and logprob <= per_token < 0


def _options(*argv):
    return decode_options(build_parser().parse_args(["translate", "m", *argv]))


def test_set_reaches_every_decoding_key():
    default = DecodingConfig()
    for key, value in default.model_dump().items():
        if value is None:
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        opts = _options("--set", f"decoding.{key}={text}")
        assert opts == {key: value}
        assert default.override(**opts) == default


def test_a_flag_wins_over_set_and_bad_keys_are_one_line_errors():
    assert _options("--set", "decoding.beam_size=2", "--beam-size", "4") == {"beam_size": 4}
    assert _options("--set", "decoding.length_penalty=0.6", "decoding.no_repeat_ngram_size=3") \
        == {"length_penalty": 0.6, "no_repeat_ngram_size": 3}
    with pytest.raises(TransduceError, match="only decoding.KEY=VALUE"):
        _options("--set", "training.lr=0.1")
    with pytest.raises(TransduceError, match="did you mean 'length_penalty'"):
        DecodingConfig().override(**_options("--set", "decoding.length_penalt=0.6"))


def test_set_changes_the_translate_command_s_output(translator, tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("w1 w1 w1 w1 w2\n")
    model_dir = str(translator.config.model_dir)
    main(["translate", model_dir, "-i", str(src), "--set", "decoding.max_len=2"])
    short = capsys.readouterr().out.split()
    assert len(short) <= 2
    main(["translate", model_dir, "-i", str(src), "--prefix", "w5 w4"])
    assert capsys.readouterr().out.split()[:2] == ["w5", "w4"]
    assert isinstance(build_parser().parse_args(["test", "m", "--src", "a", "--ref", "b",
                                                 "--set", "decoding.beam_size=1"]),
                      argparse.Namespace)


@pytest.fixture(scope="module")
def trained_dir(reverse_data, tmp_path_factory):
    """A tiny model trained until it reverses most dev sentences: its decisions are clear."""
    model_dir = tmp_path_factory.mktemp("int8") / "model"
    transduce.train(tiny_config(reverse_data, model_dir,
                                model={"encoder_hidden_size": 32, "decoder_hidden_size": 40},
                                training={"max_steps": 800, "validate_every": 800,
                                          "max_epochs": 1000}))
    return model_dir


def test_int8_outputs_equal_fp32_s(trained_dir, reverse_data):
    src = (reverse_data / "test.src").read_text().splitlines()
    ref = (reverse_data / "test.tgt").read_text().splitlines()
    fp32, int8 = transduce.load(trained_dir), transduce.load(trained_dir, quantize="int8")
    assert isinstance(int8.model.decoder.output, torch.ao.nn.quantized.dynamic.Linear)
    for beam in (1, 5):
        a, b = fp32.translate(src, beam_size=beam), int8.translate(src, beam_size=beam)
        assert sum(x == y for x, y in zip(a, ref)) >= 0.8 * len(ref)  # the model is trained
        assert sum(x == y for x, y in zip(a, b)) >= 0.95 * len(src)


def test_int8_is_for_the_cpu(trained_dir, monkeypatch):
    from transduce.model.quantize import quantize

    model = transduce.load(trained_dir).model
    with pytest.raises(TransduceError, match="runs on the CPU"):
        quantize(model, "int8", torch.device("cuda"))
    with pytest.raises(TransduceError, match="unknown quantization 'int4'"):
        quantize(model, "int4", torch.device("cpu"))
    args = build_parser().parse_args(["translate", str(trained_dir), "--quantize", "int8"])
    assert args.quantize == "int8"


def test_an_exported_int8_model_dir_loads_as_int8_and_decodes_the_same(trained_dir, reverse_data,
                                                                        tmp_path, capsys):
    from transduce.model.quantize import QLinear

    src = (reverse_data / "test.src").read_text().splitlines()
    out = tmp_path / "int8"
    assert main(["export", "--int8", str(trained_dir), str(out)]) in (0, None)
    exported, online = transduce.load(out), transduce.load(trained_dir, quantize="int8")
    layers = [[m for m in t.model.modules() if isinstance(m, QLinear)] for t in (exported, online)]
    assert len(layers[0]) == len(layers[1]) >= 4  # output, combine, attention, bridge
    for a, b in zip(*layers):  # the integers stored are those quantizing on loading makes
        assert torch.equal(a.weight().int_repr(), b.weight().int_repr())
        assert a.weight().q_scale() == b.weight().q_scale()
    for beam in (1, 5):
        assert exported.translate(src, beam_size=beam) == online.translate(src, beam_size=beam)
    assert transduce.load(out, quantize="int8").translate(src[:5]) == exported.translate(src[:5])
    weights = [(d / "best" / "model.safetensors").stat().st_size for d in (out, trained_dir)]
    assert weights[0] < weights[1]
    capsys.readouterr()
    assert main(["export", "--int8", str(trained_dir), str(out)]) == 1
    assert "exists and is not empty" in capsys.readouterr().err
