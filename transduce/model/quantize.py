"""int8 inference: dynamic quantization of the decoder's linear layers (CPU only).

The decoder's per-step products with a weight matrix — the output projection (hidden × vocab,
the largest), the combine layer, the attention's query and key layers, the bridge — run as int8
GEMMs (FBGEMM/oneDNN): weights stored int8 per tensor, each batch's activations quantized on the
fly. The recurrent cell and the encoder stay fp32: their weights are read by the recurrence code
itself, and the encoder runs once per sentence where the decoder runs once per output token and
beam.

A quantized model is saved (``transduce export --int8``) as plain tensors: per int8 layer its
integer weight, scale and zero point, and its fp32 bias (:func:`int8_weights`), read back into
the same layers without quantizing again (:func:`load_int8_weights`).
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from transduce.errors import TransduceError
from transduce.model.seq2seq import Seq2Seq

KINDS = ("int8",)
QLinear = torch.ao.nn.quantized.dynamic.Linear


def quantize(model: Seq2Seq, kind: str, device: torch.device) -> Seq2Seq:
    """``model`` (in eval mode, on the CPU) with its decoder's ``nn.Linear`` layers dynamically
    quantized to ``kind``; the model is changed in place and returned. For inference only."""
    if kind not in KINDS:
        raise TransduceError(f"unknown quantization {kind!r}; use one of {', '.join(KINDS)}")
    if is_quantized(model):  # an exported int8 model_dir: already done
        return model
    if device.type != "cpu":
        raise TransduceError(f"--quantize {kind} runs on the CPU (quantized kernels), not on "
                             f"{device.type}; use --device cpu, or fp32 on the GPU")
    with warnings.catch_warnings():  # torch.ao's eager quantization is marked for migration
        warnings.simplefilter("ignore")
        model.decoder = torch.ao.quantization.quantize_dynamic(
            model.decoder.eval(), {nn.Linear}, dtype=torch.qint8)
    return model.eval()


def is_quantized(model: nn.Module) -> bool:
    return any(isinstance(m, QLinear) for m in model.modules())


def _int8_layers(model: nn.Module) -> dict[str, QLinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, QLinear)}


def _outside(name: str, layers: dict) -> bool:
    return not any(name.startswith(layer + ".") for layer in layers)


def int8_weights(model: Seq2Seq) -> dict[str, torch.Tensor]:
    """A quantized model's weights as plain tensors: the fp32 ones as they are, and per int8
    layer ``NAME.weight.int8`` (out, in), ``NAME.weight.scale`` and ``.zero_point`` (one per
    tensor: (1,); per output channel: (out,)) and ``NAME.bias``."""
    layers = _int8_layers(model)
    state = {k: v for k, v in model.state_dict().items() if _outside(k, layers)}
    for name, layer in layers.items():
        w, b = layer.weight(), layer.bias()
        if w.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
            scale, zero = torch.tensor([w.q_scale()]), torch.tensor([w.q_zero_point()])
        else:
            scale, zero = w.q_per_channel_scales(), w.q_per_channel_zero_points()
        state.update({f"{name}.weight.int8": w.int_repr(), f"{name}.weight.scale": scale.double(),
                      f"{name}.weight.zero_point": zero.long()})
        if b is not None:
            state[f"{name}.bias"] = b.detach()
    return state


def load_int8_weights(model: Seq2Seq, state: dict[str, torch.Tensor]) -> None:
    """Load :func:`int8_weights`' tensors into a model quantized the same way (its int8 layers'
    integers exactly as stored); a name missing or left over is a ``KeyError`` naming it."""
    layers = _int8_layers(model)
    fp32 = {k for k in model.state_dict() if _outside(k, layers)}
    wanted = fp32 | {f"{n}.weight.{part}" for n in layers for part in ("int8", "scale",
                                                                         "zero_point")}
    wanted |= {f"{n}.bias" for n, layer in layers.items() if layer.bias() is not None}
    if set(state) != wanted:
        raise KeyError(sorted(set(state) ^ wanted)[0])
    own = model.state_dict()  # the int8 layers' own entries (loading needs them), then replaced
    for k in fp32:
        own[k] = state[k]
    model.load_state_dict(own)  # own keeps its _metadata: the int8 layers' format versions
    for name, layer in layers.items():
        q, scale, zero = (state[f"{name}.weight.{p}"] for p in ("int8", "scale", "zero_point"))
        real = ((q.double() - zero.view(-1, 1)) * scale.view(-1, 1)).float()  # requantizes to q
        weight = (torch.quantize_per_tensor(real, float(scale), int(zero), torch.qint8)
                  if scale.numel() == 1 else
                  torch.quantize_per_channel(real, scale, zero, 0, torch.qint8))
        layer.set_weight_bias(weight, state.get(f"{name}.bias"))
