"""The hand-written input-feeding loop (model/recurrence.py) against the autograd loop."""
import pytest
import torch

from transduce.config import load_config
from transduce.data.vocabulary import PAD_ID
from transduce.model.seq2seq import build_model


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))]


def _model(attention: str, copy: bool = False, device: str = "cpu"):
    # "dot=": dot attention with encoder outputs as wide as the decoder, so keys are the memory
    kind, enc = (attention[:-1], 8) if attention.endswith("=") else (attention, 10)
    cfg = load_config({"model_dir": "unused", "model": {
        "embedding_size": 12, "encoder_hidden_size": enc, "decoder_hidden_size": 16,
        "attention": kind, "dropout": 0.3, "copy": copy}})
    torch.manual_seed(0)
    return build_model(cfg.model, 30, 25).double().to(device)


def _batch(device: str):
    g = torch.Generator().manual_seed(1)
    src = torch.randint(4, 30, (3, 7), generator=g)
    src_lens = torch.tensor([7, 5, 2])
    src[1, 5:] = PAD_ID
    src[2, 2:] = PAD_ID
    tgt_in = torch.randint(4, 25, (3, 6), generator=g)
    return src.to(device), src_lens, tgt_in.to(device)


def _run(model, how: str, train: bool, device: str):
    """Logits, attention and every parameter's gradient of a weighted sum of both, with the
    decoder's recurrence forced to ``how``."""
    model.decoder.recurrence = lambda device_type: how
    model.train(train)
    model.zero_grad()
    src, src_lens, tgt_in = _batch(device)
    torch.manual_seed(5)  # the same dropout masks on both paths
    with torch.backends.cudnn.flags(enabled=False):  # cuDNN's RNN has no backward in eval mode
        out = model(src, src_lens, tgt_in)
    g = torch.Generator().manual_seed(2)
    w_logits = torch.randn(out.logits.shape, generator=g, dtype=torch.double).to(device)
    w_attn = torch.randn(out.attention.shape, generator=g, dtype=torch.double).to(device)
    ((out.logits * w_logits).sum() + (out.attention * w_attn).sum()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.logits.detach(), out.attention.detach(), grads


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("attention", ["dot", "dot=", "general", "mlp"])
@pytest.mark.parametrize("train", [False, True])
def test_hand_written_loop_matches_autograd(attention, train, device):
    model = _model(attention, device=device)
    assert model.decoder.recurrence(device) == "hand-written"
    assert (model.decoder.attention.key_layer is None) == (attention == "dot=")
    ref_logits, ref_attn, ref_grads = _run(model, "autograd", train, device)
    logits, attn, grads = _run(model, "hand-written", train, device)
    torch.testing.assert_close(logits, ref_logits)
    torch.testing.assert_close(attn, ref_attn)
    assert grads.keys() == ref_grads.keys()
    for name in ref_grads:
        torch.testing.assert_close(grads[name], ref_grads[name], msg=name)


def test_hand_written_loop_only_where_it_applies():
    # copy reads attention after the loop
    assert _model("mlp", copy=True).decoder.recurrence("cpu") == "hand-written"
    for overrides, how in (({"cell": "gru"}, "autograd"), ({"layers": 2}, "autograd"),
                           ({"attention": "none"}, "autograd"), ({"coverage": True}, "autograd"),
                           ({"input_feeding": False}, "sequence")):
        cfg = load_config({"model_dir": "unused", "model": {"decoder_hidden_size": 16,
                                                            "encoder_hidden_size": 8,
                                                            "embedding_size": 8, **overrides}})
        assert build_model(cfg.model, 10, 10).decoder.recurrence("cpu") == how, overrides
    decoder = _model("mlp").decoder
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the hand-written loop runs in one dtype
        assert decoder.recurrence("cpu") == "autograd"
