"""model.arch: transformer (model/transformer.py) under the contract the RNN meets: incremental
decoding equals full recomputation, padding and batch size change nothing, beam 1 is greedy, it
learns the reversal task, resume is exact, int8 and export work, attention reaches the API."""
from __future__ import annotations

import hashlib

import pytest
import torch

import transduce
from transduce.config import ModelConfig, load_config
from transduce.data.batching import make_batch
from transduce.decode.search import beam_search, greedy
from transduce.model.seq2seq import build_model
from transduce.training.trainer import Trainer

from conftest import signal_after_update, tiny_config

TEXTS = ["w1 w2 w3", "w4 w5 w6 w7 w8 w9", "w10", "w3 w3 w2 w1", "w7 w8"]
MODEL = {"arch": "transformer", "embedding_size": 32, "heads": 4, "ff_size": 64, "layers": 2,
         "copy": False, "coverage": False}


def _model(dropout: float = 0.0):
    torch.manual_seed(1)
    return build_model(ModelConfig(**MODEL, dropout=dropout), 14, 14).eval()


@pytest.fixture(scope="module")
def translator(reverse_data, tmp_path_factory):
    return transduce.train(tiny_config(reverse_data, tmp_path_factory.mktemp("tf") / "model",
                                       model=MODEL,
                                       training={"max_steps": 300, "validate_every": 300,
                                                 "lr": 3e-3}))


def test_incremental_decoding_equals_full_recomputation():
    model = _model()
    src = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    lens = torch.tensor([4, 2])
    tgt = torch.tensor([[2, 5, 6, 7, 9], [2, 11, 12, 4, 5]])
    with torch.no_grad():
        full = model(src, lens, tgt)
        state, steps, att = model.encode(src, lens), [], []
        for t in range(tgt.size(1)):
            logp, state, a, _ = model.step(tgt[:, t], state)
            steps.append(logp)
            att.append(a)
    logits = full.logits.float()
    logits[..., [0, 2]] = float("-inf")
    expected, got = logits.log_softmax(-1), torch.stack(steps, 1)
    finite = torch.isfinite(expected)
    assert torch.equal(finite, torch.isfinite(got))
    assert torch.allclose(got[finite], expected[finite], atol=1e-5)
    assert torch.allclose(torch.stack(att, 1), full.attention, atol=1e-6)
    assert full.attention[1, :, 2:].abs().max() == 0  # no attention on padding


def test_padding_and_batch_size_change_nothing(translator):
    alone = [translator.translate([t], beam_size=3)[0] for t in TEXTS]
    assert translator.translate(TEXTS, beam_size=3) == alone
    assert translator.translate(TEXTS, beam_size=3, batch_size=2) == alone


def test_beam_of_one_is_greedy_and_it_learns_the_task(translator, reverse_data):
    model = translator.model
    ids = [translator.src.vocab.encode(t.split()) for t in TEXTS]
    b = make_batch(ids)
    lens = [20] * len(TEXTS)
    g = greedy(model, b.src, b.src_lens, lens)
    k1 = beam_search(model, b.src, b.src_lens, lens, beam_size=1, alpha=0.0)
    assert [h.tokens for h in g] == [nb[0].tokens for nb in k1]
    src = (reverse_data / "test.src").read_text().splitlines()
    ref = (reverse_data / "test.tgt").read_text().splitlines()
    out = translator.translate(src, beam_size=5)
    assert sum(o == r for o, r in zip(out, ref)) >= 0.2 * len(ref)  # untrained: none


def test_the_log_and_the_server_name_the_transformer():
    assert ModelConfig(**MODEL).describe() == (
        "transformer (2 layers, width 32, feed-forward 64)", "4-head")
    assert ModelConfig().describe() == ("lstm (bidirectional) encoder, lstm decoder", "mlp")


def test_attention_reaches_the_api_and_int8_and_export_work(translator, tmp_path):
    from transduce.cli import main

    r = translator.search(["w1 w2 w3"], attention=True)[0][0]
    assert r.attention.shape == (len(r.tgt_tokens) + 1, 3)
    assert torch.allclose(r.attention.sum(-1), torch.ones(len(r.tgt_tokens) + 1), atol=1e-5)
    model_dir = str(translator.config.model_dir)
    int8 = transduce.load(model_dir, quantize="int8")
    assert sum(a == b for a, b in zip(int8.translate(TEXTS), translator.translate(TEXTS))) >= 4
    assert main(["export", "--int8", model_dir, str(tmp_path / "int8")]) in (0, None)
    assert transduce.load(tmp_path / "int8").translate(TEXTS) == int8.translate(TEXTS)


def test_resume_is_exact(reverse_data, tmp_path):
    def cfg(name):
        return load_config(tiny_config(reverse_data, tmp_path / name,
                                       model={**MODEL, "dropout": 0.3},
                                       training={"max_steps": 24, "validate_every": 8}))

    Trainer(cfg("ref")).train()
    with signal_after_update(11), pytest.raises(Exception) as e:
        Trainer(cfg("model")).train()
    assert getattr(e.value, "exit_code", None) == 143
    Trainer(cfg("model")).train()
    sha = [hashlib.sha256((tmp_path / n / "last/model.safetensors").read_bytes()).hexdigest()
           for n in ("ref", "model")]
    assert sha[0] == sha[1]


@pytest.mark.parametrize("change, message", [
    ({"copy": True}, "model.copy is for arch: rnn"),
    ({"coverage": True}, "model.coverage is for arch: rnn"),
    ({"heads": 5}, "multiple of model.heads"),
    ({"encoder": "cnn"}, "image sources need arch: rnn"),
])
def test_what_the_transformer_does_not_take_is_a_config_error(change, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**{**MODEL, **change})


def test_copy_auto_stays_off_for_the_transformer():
    """Reversal copies every token: an rnn would copy."""
    cfg = load_config({"model": {**MODEL, "copy": "auto", "coverage": "auto"}})
    from transduce.data.profile import resolve_auto

    resolved, note = resolve_auto(cfg, ["a b c"] * 10, ["c b a"] * 10)
    assert resolved.model.copy is False and "copy: auto -> false" in note
