"""int8 inference: dynamic quantization of the decoder's linear layers (CPU only).

The decoder's per-step products with a weight matrix — the output projection (hidden × vocab,
the largest), the combine layer, the attention's query and key layers, the bridge — run as int8
GEMMs (FBGEMM/oneDNN): weights stored int8 per tensor, each batch's activations quantized on the
fly. The recurrent cell and the encoder stay fp32: their weights are read by the recurrence code
itself, and the encoder runs once per sentence where the decoder runs once per output token and
beam.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from transduce.errors import TransduceError
from transduce.model.seq2seq import Seq2Seq

KINDS = ("int8",)


def quantize(model: Seq2Seq, kind: str, device: torch.device) -> Seq2Seq:
    """``model`` (in eval mode, on the CPU) with its decoder's ``nn.Linear`` layers dynamically
    quantized to ``kind``; the model is changed in place and returned. For inference only."""
    if kind not in KINDS:
        raise TransduceError(f"unknown quantization {kind!r}; use one of {', '.join(KINDS)}")
    if device.type != "cpu":
        raise TransduceError(f"--quantize {kind} runs on the CPU (quantized kernels), not on "
                             f"{device.type}; use --device cpu, or fp32 on the GPU")
    with warnings.catch_warnings():  # torch.ao's eager quantization is marked for migration
        warnings.simplefilter("ignore")
        model.decoder = torch.ao.quantization.quantize_dynamic(
            model.decoder.eval(), {nn.Linear}, dtype=torch.qint8)
    return model.eval()
