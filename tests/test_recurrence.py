"""The fused input-feeding loop (model/recurrence.py) against the step-by-step autograd path."""
import pytest
import torch

from transduce.config import load_config
from transduce.data.vocabulary import PAD_ID
from transduce.model.seq2seq import build_model


def _model(attention: str, copy: bool = False):
    cfg = load_config({"model_dir": "unused", "model": {
        "embedding_size": 12, "encoder_hidden_size": 10, "decoder_hidden_size": 16,
        "attention": attention, "dropout": 0.3, "copy": copy}})
    torch.manual_seed(0)
    return build_model(cfg.model, 30, 25).double()


def _batch():
    g = torch.Generator().manual_seed(1)
    src = torch.randint(4, 30, (3, 7), generator=g)
    src_lens = torch.tensor([7, 5, 2])
    src[1, 5:] = PAD_ID
    src[2, 2:] = PAD_ID
    tgt_in = torch.randint(4, 25, (3, 6), generator=g)
    return src, src_lens, tgt_in


def _run(model, fused: bool, train: bool):
    """Logits, attention and every parameter's gradient of a weighted sum of both."""
    model.decoder.fused = fused
    model.train(train)
    model.zero_grad()
    src, src_lens, tgt_in = _batch()
    torch.manual_seed(5)  # the same dropout masks on both paths
    out = model(src, src_lens, tgt_in)
    g = torch.Generator().manual_seed(2)
    w_logits = torch.randn(out.logits.shape, generator=g, dtype=torch.double)
    w_attn = torch.randn(out.attention.shape, generator=g, dtype=torch.double)
    ((out.logits * w_logits).sum() + (out.attention * w_attn).sum()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.logits.detach(), out.attention.detach(), grads


@pytest.mark.parametrize("attention", ["dot", "general", "mlp"])
@pytest.mark.parametrize("train", [False, True])
def test_fused_loop_matches_autograd(attention, train):
    model = _model(attention)
    assert model.decoder.fused
    ref_logits, ref_attn, ref_grads = _run(model, False, train)
    logits, attn, grads = _run(model, True, train)
    torch.testing.assert_close(logits, ref_logits)
    torch.testing.assert_close(attn, ref_attn)
    assert grads.keys() == ref_grads.keys()
    for name in ref_grads:
        torch.testing.assert_close(grads[name], ref_grads[name], msg=name)


def test_fused_loop_only_where_it_applies():
    assert _model("mlp", copy=True).decoder.fused  # copy reads attention after the loop
    for overrides in ({"cell": "gru"}, {"layers": 2}, {"input_feeding": False},
                      {"attention": "none"}, {"coverage": True}):
        cfg = load_config({"model_dir": "unused", "model": {"decoder_hidden_size": 16,
                                                            "encoder_hidden_size": 8,
                                                            "embedding_size": 8, **overrides}})
        assert not build_model(cfg.model, 10, 10).decoder.fused, overrides
