"""Deferred weight gradients for the decoder's time loop.

An input-feeding decoder multiplies small inputs (batch x hidden) by the same weights at every
step. Left to autograd, each step's backward computes its own weight gradient, a thin GEMM whose
inner size is the batch, and adds it into a running sum: per weight, T thin GEMMs and T full-size
additions. Here each step only records its input (and, in backward, its output gradient), and one
GEMM over all steps computes each weight's gradient once, at the end of the backward pass.

Two kinds of weights are handled:

- *gate weights* multiply the fed vector and the previous state inside ``torch.lstm_cell``. Their
  output gradient is the gate gradient, which autograd already delivers to the per-step bias
  ``pre_t`` (the precomputed embedding projection), so :meth:`StepGrads.anchor` reads it there;
- *step weights* (attention query layer, attentional output layer) go through
  :meth:`StepGrads.linear`, whose backward stores the output gradient.

The anchor node sits upstream of every step, so autograd runs its backward only after all steps'
backward passes: all inputs and gradients are known by then.
"""
from __future__ import annotations

import torch


class StepGrads:
    def __init__(self, weights: dict[str, torch.Tensor], gate_names: tuple[str, ...]):
        self.weights = weights
        self.gate_names = gate_names
        self.inputs: dict[str, list[torch.Tensor]] = {name: [] for name in weights}
        self.grads: dict[str, list[torch.Tensor | None]] = {name: [] for name in weights}
        self.detached = {name: w.detach() for name, w in weights.items()}

    def anchor(self, pre: torch.Tensor) -> torch.Tensor:
        """Route ``pre`` (batch, steps, gates) through the node that computes all gradients."""
        return _Flush.apply(pre, self, *self.weights.values())

    def record(self, name: str, x: torch.Tensor) -> None:
        """Step input of a gate weight: (batch, in_features)."""
        self.inputs[name].append(x.detach())

    def linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """``x @ W.T`` for a step weight, W's gradient deferred."""
        return _StepLinear.apply(x, self.detached[name], self, name)


class _StepLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, bank: StepGrads, name: str):
        device = x.device.type
        if torch.is_autocast_enabled(device):  # do what autocast would do for a matmul
            dtype = torch.get_autocast_dtype(device)
            x, w = x.to(dtype), w.to(dtype)
        ctx.w, ctx.bank, ctx.name = w, bank, name
        ctx.index = len(bank.inputs[name])
        bank.inputs[name].append(x.reshape(-1, x.size(-1)))
        bank.grads[name].append(None)
        return x.matmul(w.t())

    @staticmethod
    def backward(ctx, grad):
        ctx.bank.grads[ctx.name][ctx.index] = grad.reshape(-1, grad.size(-1))
        return grad.to(ctx.w.dtype).matmul(ctx.w), None, None, None


class _Flush(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre, bank: StepGrads, *weights):
        ctx.bank = bank
        return pre.clone()

    @staticmethod
    def backward(ctx, grad_pre):
        bank: StepGrads = ctx.bank
        gates = grad_pre.transpose(0, 1).reshape(-1, grad_pre.size(-1))  # (steps*batch, gates)
        out = []
        for name, w in bank.weights.items():
            xs = bank.inputs[name]
            if name in bank.gate_names:
                x = torch.cat(xs)  # (steps*batch, in): step-major, like ``gates``
                out.append(gates.t().matmul(x.to(gates.dtype)).to(w.dtype))
                continue
            used = [(x, g) for x, g in zip(xs, bank.grads[name]) if g is not None]
            if not used:
                out.append(None)
                continue
            x = torch.cat([x for x, _ in used])
            g = torch.cat([g for _, g in used]).to(x.dtype)
            out.append(g.t().matmul(x).to(w.dtype))
        bank.inputs.clear()
        bank.grads.clear()
        return (grad_pre, None, *out)
