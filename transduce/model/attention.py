"""Attention over encoder states: Luong ``dot`` and ``general`` (bilinear), Bahdanau ``mlp``.

Keys are projected once per sentence (:meth:`Attention.project_keys`); each decoder step then costs
one small batched matrix product. Queries may hold one step (decoding) or all steps at once
(training without input feeding).

With ``coverage`` (mlp only) the score also sees how much attention each source position has had
so far: v·tanh(W_q q + W_k k + w_c c), c the coverage vector (See et al., 2017).
"""
from __future__ import annotations

import torch
from torch import nn


class Attention(nn.Module):
    """score(q, k): dot = q·k; general = q·(W k); mlp = v·tanh(W_q q + W_k k)."""

    def __init__(self, kind: str, query_size: int, key_size: int, coverage: bool = False):
        super().__init__()
        if kind not in ("dot", "general", "mlp"):
            raise ValueError(f"unknown attention {kind!r}")
        if coverage and kind != "mlp":
            raise ValueError("coverage needs mlp attention")
        self.kind = kind
        self.key_layer: nn.Linear | None = None
        self.query_layer: nn.Linear | None = None
        self.v: nn.Linear | None = None
        if kind == "general" or (kind == "dot" and query_size != key_size):
            # dot with different sizes projects the keys, which makes it the bilinear score
            self.key_layer = nn.Linear(key_size, query_size, bias=False)
        elif kind == "mlp":
            self.key_layer = nn.Linear(key_size, query_size, bias=False)
            self.query_layer = nn.Linear(query_size, query_size, bias=False)
            self.v = nn.Linear(query_size, 1, bias=False)
        self.coverage_layer = nn.Linear(1, query_size, bias=False) if coverage else None

    def score_weights(self) -> tuple[torch.Tensor, torch.Tensor] | tuple[None, None]:
        """What code that computes the score itself (``recurrence.py``) needs besides the keys of
        :meth:`project_keys`: mlp's W_q (query_size, query_size) and v (query_size,), the score
        being v·tanh(W_q q + keys); (None, None) for dot and general, the score being q·keys."""
        if self.coverage_layer is not None:
            raise ValueError("the coverage score has a third term; use forward")
        if self.kind != "mlp":
            return None, None
        return self.query_layer.weight, self.v.weight.view(-1)

    def project_keys(self, memory: torch.Tensor) -> torch.Tensor:
        """(batch, src_len, key_size) -> (batch, src_len, query_size), once per sentence."""
        return memory if self.key_layer is None else self.key_layer(memory)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, memory: torch.Tensor,
                mask: torch.Tensor, coverage: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            query: (batch, steps, query_size); keys: (batch, src_len, query_size) from
                :meth:`project_keys`; memory: (batch, src_len, key_size); mask: (batch, src_len),
                True at real source tokens. coverage: (batch, steps, src_len) attention summed
                over the earlier steps (with ``coverage=True``).
        Returns:
            context: (batch, steps, key_size); weights: (batch, steps, src_len).
        """
        if self.kind == "mlp":
            q = self.query_layer(query)  # (batch, steps, query)
            hidden = q.unsqueeze(2) + keys.unsqueeze(1)  # (batch, steps, src_len, q)
            if self.coverage_layer is not None:
                hidden = hidden + self.coverage_layer(coverage.unsqueeze(-1))
            hidden = torch.tanh(hidden)
            scores = self.v(hidden).squeeze(-1)  # (batch, steps, src_len)
        else:
            scores = torch.bmm(query, keys.transpose(1, 2))  # (batch, steps, src_len)
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        context = torch.bmm(weights, memory)  # (batch, steps, key_size)
        return context, weights
