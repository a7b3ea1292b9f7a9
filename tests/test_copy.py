"""Pointer-generator copying and coverage (model.copy, model.coverage)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import transduce
from transduce.config import load_config
from transduce.data.batching import make_batch
from transduce.data.generate import write_task
from transduce.data.vocabulary import PAD_ID, UNK_ID
from transduce.decode.search import beam_search, coverage_penalty, greedy
from transduce.evaluate import repeated_ngram_rate
from transduce.model import pointer
from transduce.model.seq2seq import build_model
from transduce.training import loss as losses

from conftest import tiny_config


def _copy_model(**model):
    cfg = load_config({"model_dir": "unused", "model": {
        "embedding_size": 8, "encoder_hidden_size": 8, "decoder_hidden_size": 12,
        "dropout": 0.0, "copy": True, **model}})
    torch.manual_seed(0)
    return build_model(cfg.model, 10, 7).eval()


def _copy_batch():
    src = [[4, 5, 6, 7], [8, 9]]
    ext = [[4, 7, 8, 7], [9, 5]]  # target-side ids; 7, 8, 9 are extended (vocab 7)
    tgt = [[7, 8, 4], [9]]
    return make_batch(src, tgt, ext)


@pytest.mark.parametrize("feeding", [True, False])
@pytest.mark.parametrize("coverage", [False, True])
def test_copy_loss_is_the_nll_of_the_decoding_distribution(feeding, coverage):
    """Training's loss and decoding's mixed distribution agree, step by step."""
    model = _copy_model(input_feeding=feeding, coverage=coverage)
    b = _copy_batch()
    with torch.no_grad():
        out = model(b.src, b.src_lens, b.tgt_in, b.src_ext)
        loss = losses.copy_nll(out.logits, out.attention, out.p_gen, b.src_ext, b.tgt_out)
        state = model.encode(b.src, b.src_lens, b.src_ext)
        assert state.n_ext == 3
        total = 0.0
        for t in range(b.tgt_in.size(1)):
            h, state, a = model.decoder.attentional_step(b.tgt_in[:, t], state)
            logp = pointer.mix(model.decoder.output(h), a, model.decoder.gate(h, b.tgt_in[:, t]),
                               state.src_ext, state.n_ext)  # (batch, 7 + 3)
            assert torch.allclose(logp.exp().sum(-1), torch.ones(2), atol=1e-5)
            y = b.tgt_out[:, t]
            total -= float(logp.gather(1, y.unsqueeze(1)).squeeze(1)[y != PAD_ID].sum())
    assert math.isclose(float(loss), total, rel_tol=1e-5)


def test_copy_model_decodes_extended_ids_greedy_and_beam():
    model = _copy_model()
    b = _copy_batch()
    for hyps in (greedy(model, b.src, b.src_lens, [6, 6], src_ext=b.src_ext,
                        return_attention=True),
                 [h[0] for h in beam_search(model, b.src, b.src_lens, [6, 6], beam_size=3,
                                            src_ext=b.src_ext, return_attention=True)]):
        for i, h in enumerate(hyps):
            n = int(b.src_lens[i])
            allowed = {UNK_ID, 4, 5, 6} | set(b.src_ext[i, :n].tolist())  # vocab, own source
            assert set(h.tokens) <= allowed
            assert h.copy is not None and h.copy.shape[0] == h.attention.shape[0]
            assert ((h.copy >= 0) & (h.copy <= 1)).all()


def test_coverage_penalty_rewards_covering_the_source():
    assert coverage_penalty(torch.tensor([1.0, 1.0]), 0.2) == 0.0
    assert coverage_penalty(torch.tensor([0.1, 1.0]), 0.2) < coverage_penalty(
        torch.tensor([0.5, 1.0]), 0.2) < 0
    assert coverage_penalty(torch.tensor([0.1]), 0.0) == 0.0


def test_coverage_loss_counts_attention_paid_twice():
    once = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # (batch 1, tgt 2, src 2)
    twice = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    tgt = torch.tensor([[5, 6]])
    assert float(losses.coverage_loss(once, tgt)) == 0.0
    assert float(losses.coverage_loss(twice, tgt)) == 1.0
    assert float(losses.coverage_loss(twice, torch.tensor([[5, PAD_ID]]))) == 0.0


@pytest.mark.parametrize("bad, message", [
    ({"copy": True, "attention": "none"}, "model.copy copies through attention"),
    ({"coverage": True, "attention": "dot"}, "model.coverage needs model.attention: mlp"),
])
def test_copy_and_coverage_config_errors(bad, message):
    with pytest.raises(Exception, match=message):
        load_config({"model_dir": "x", "model": bad})


def _exact(translator, data: Path, split: str = "test") -> float:
    src = (data / f"{split}.src").read_text(encoding="utf-8").splitlines()
    ref = (data / f"{split}.tgt").read_text(encoding="utf-8").splitlines()
    hyps = translator.translate(src, beam_size=1)
    return sum(h == r for h, r in zip(hyps, ref)) / len(ref)


@pytest.fixture(scope="module")
def rename_data(tmp_path_factory) -> Path:
    """'rename X to Y' -> 'Y' with made-up X, Y: held-out outputs are out of vocabulary."""
    out = tmp_path_factory.mktemp("rename")
    write_task("rename", out, {"train": 3000, "dev": 100, "test": 200})
    return out


def _rename_config(data: Path, model_dir: Path, copy: bool) -> dict:
    # min_freq 2 keeps the made-up words (seen once) out of the vocabulary, in training too
    return tiny_config(data, model_dir, data={"train": str(data / "train"),
                                              "dev": str(data / "dev"), "tokenizer": "word",
                                              "min_freq": 2},
                       model={"copy": copy, "embedding_size": 32, "encoder_hidden_size": 32,
                              "decoder_hidden_size": 64},
                       training={"max_steps": 500, "validate_every": 500, "batch_size": 32,
                                 "max_minutes": 1.0})


def test_copy_learns_to_produce_unseen_words(rename_data, tmp_path):
    """Acceptance (#8): with copy >= 95 % exact on held-out pairs within 60 s of training."""
    with_copy = transduce.train(_rename_config(rename_data, tmp_path / "copy", True))
    assert _exact(with_copy, rename_data) >= 0.95
    without = transduce.train(_rename_config(rename_data, tmp_path / "plain", False))
    assert _exact(without, rename_data) < 0.5


def test_coverage_lowers_repetition(tmp_path):
    """Acceptance (#8): copying 1-4 made-up words, briefly trained copy models repeat words;
    coverage (in the score and the loss) repeats fewer. Mean over three seeds."""
    data = tmp_path / "data"
    write_task("rename", data, {"train": 3000, "dev": 100, "test": 200}, max_words=4)
    src = (data / "test.src").read_text(encoding="utf-8").splitlines()
    rates = {}
    for coverage in (False, True):
        rate = 0.0
        for seed in (1, 2, 3):
            cfg = _rename_config(data, tmp_path / f"m{coverage}{seed}", True)
            cfg["seed"] = seed
            cfg["model"]["coverage"] = coverage
            cfg["training"].update(max_steps=150, validate_every=150)
            hyps = transduce.train(cfg).translate(src, beam_size=1)
            rate += repeated_ngram_rate(hyps, 1) / 3
        rates[coverage] = rate
    assert rates[True] < 0.5 * rates[False]
