"""Mixed precision: which precisions a device can train in, and the autocast context for one."""
from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext

import torch

from transduce.errors import TransduceError

log = logging.getLogger("transduce")


def check_precision(precision: str, device: torch.device) -> None:
    """fp16 needs CUDA; bf16 on a CPU without bf16 instructions works but crawls: warn."""
    if precision == "fp16" and device.type != "cuda":
        raise TransduceError("training.precision=fp16 needs a CUDA device; use bf16 on CPU")
    if (precision == "bf16" and device.type == "cpu"
            and not torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        log.warning("training.precision=bf16 on a CPU without bf16 instructions (%s): matrix "
                    "products run about 20x slower than in fp32 (docs/performance.md); use fp32",
                    torch.backends.cpu.get_cpu_capability())


def autocast(precision: str, device: torch.device) -> AbstractContextManager:
    """The context to run the model in: nothing for fp32, else torch's autocast."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)
