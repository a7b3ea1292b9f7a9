"""The Transformer encoder-decoder (Vaswani et al., 2017) with pre-norm layers (Nguyen & Salazar,
2019: stable without a long warm-up on small data), sinusoidal positions and a key/value cache.

The decoder has the RNN decoder's interface (``init_state``, teacher-forced ``forward``,
``attentional_step``, ``output``), so :class:`~transduce.model.seq2seq.Seq2Seq`, the search,
ensembles and serving run it unchanged. Decoding is incremental: each layer keeps the keys and
values of the positions decoded so far (rows are hypotheses, reordered with the beam), and the
cross-attention keys and values of the source are projected once. The attention the rest of
transduce sees (plots, the web page, coverage penalty) is the last layer's cross-attention,
averaged over heads.

Shapes: b batch (or hypotheses), s source length, t target length, d ``model.embedding_size``,
h ``model.heads``, dh = d / h.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from transduce.data.vocabulary import PAD_ID

KV = tuple[torch.Tensor, torch.Tensor]  # keys and values, each (b, h, positions, dh)


def positions(length: int, d: int, start: int = 0, device=None) -> torch.Tensor:
    """Sinusoidal position encodings for positions start .. start + length - 1: (length, d)."""
    pos = torch.arange(start, start + length, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, d, 2, device=device, dtype=torch.float32)
                     * (-math.log(10000.0) / d))
    enc = torch.zeros(length, d, device=device)
    enc[:, 0::2] = torch.sin(pos * freq)
    enc[:, 1::2] = torch.cos(pos * freq[:d // 2])
    return enc


class MultiHeadAttention(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dh = heads, d // heads
        self.query, self.key, self.value, self.out = (nn.Linear(d, d) for _ in range(4))
        self.dropout = nn.Dropout(dropout)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(b, n, d) -> (b, h, n, dh)."""
        return x.unflatten(-1, (self.heads, self.dh)).transpose(1, 2)

    def kv(self, x: torch.Tensor) -> KV:
        return self.split(self.key(x)), self.split(self.value(x))

    def forward(self, x: torch.Tensor, kv: KV, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (b, tq, d) attends over ``kv`` where ``mask`` (broadcast to (b, h, tq, tk)) is
        True -> (b, tq, d) and the weights averaged over heads (b, tq, tk)."""
        q = self.split(self.query(x))  # (b, h, tq, dh)
        scores = q @ kv[0].transpose(-1, -2) / math.sqrt(self.dh)  # (b, h, tq, tk)
        weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)
        out = (self.dropout(weights) @ kv[1]).transpose(1, 2).flatten(2)  # (b, tq, d)
        return self.out(out), weights.mean(1)


class FeedForward(nn.Sequential):
    def __init__(self, d: int, ff: int, dropout: float):
        super().__init__(nn.Linear(d, ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff, d))


class EncoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attention = MultiHeadAttention(d, heads, dropout)
        self.ff, self.dropout = FeedForward(d, ff, dropout), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.dropout(self.attention(y, self.attention.kv(y), mask)[0])
        return x + self.dropout(self.ff(self.norm2(x)))


class TransformerEncoder(nn.Module):
    def __init__(self, vocab_size: int, d: int, heads: int, ff: int, layers: int,
                 dropout: float):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d, padding_idx=PAD_ID)
        self.layers = nn.ModuleList(EncoderLayer(d, heads, ff, dropout) for _ in range(layers))
        self.norm, self.dropout, self.output_size = nn.LayerNorm(d), nn.Dropout(dropout), d

    def forward(self, src: torch.Tensor, src_lens: torch.Tensor) -> tuple[torch.Tensor, None]:
        """src (b, s) ids -> memory (b, s, d); no final state (the decoder starts from none)."""
        d = self.output_size
        x = self.embed(src) * math.sqrt(d) + positions(src.size(1), d, device=src.device)
        mask = (src != PAD_ID)[:, None, None, :]  # (b, 1, 1, s)
        x = self.dropout(x)
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x), None


@dataclass
class TransformerState:
    """What a decoding step needs; rows are sentences (or beam hypotheses)."""

    cache: list[KV]  # per layer: self-attention keys/values of the positions decoded so far
    cross: list[KV]  # per layer: the source's keys/values, projected once
    memory: torch.Tensor  # (b, s, d) encoder outputs
    mask: torch.Tensor  # (b, s) True at real source tokens
    step: int = 0  # positions decoded so far
    src_ext: torch.Tensor | None = None  # the search's interface (copy is not supported)
    n_ext: int = 0

    @property
    def keys(self) -> torch.Tensor:  # the search asks whether there is attention: there is
        return self.memory

    def select(self, index: torch.Tensor, source: bool = True) -> "TransformerState":
        """Keep/reorder/repeat rows (``source=False``: the source side stays as it is)."""
        pick = (lambda t: t.index_select(0, index))  # noqa: E731
        src = pick if source else (lambda t: t)  # noqa: E731
        return TransformerState([(pick(k), pick(v)) for k, v in self.cache],
                                [(src(k), src(v)) for k, v in self.cross], src(self.memory),
                                src(self.mask), self.step)


class DecoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_attention = MultiHeadAttention(d, heads, dropout)
        self.cross_attention = MultiHeadAttention(d, heads, dropout)
        self.ff, self.dropout = FeedForward(d, ff, dropout), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, past: KV | None, self_mask: torch.Tensor, cross: KV,
                src_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, KV]:
        """x (b, t, d) at the positions after ``past`` (the cached keys/values of the earlier
        ones, or None) -> (b, t, d), the cross-attention weights (b, t, s) and the keys/values
        of all positions so far."""
        y = self.norm1(x)
        kv = self.self_attention.kv(y)
        if past is not None:
            kv = (torch.cat([past[0], kv[0]], dim=2), torch.cat([past[1], kv[1]], dim=2))
        x = x + self.dropout(self.self_attention(y, kv, self_mask)[0])
        y, weights = self.cross_attention(self.norm2(x), cross, src_mask)
        x = x + self.dropout(y)
        return x + self.dropout(self.ff(self.norm3(x))), weights, kv


class TransformerDecoder(nn.Module):
    def __init__(self, vocab_size: int, d: int, heads: int, ff: int, layers: int,
                 dropout: float, tied_embeddings: bool = False):
        super().__init__()
        self.vocab_size, self.d = vocab_size, d
        self.embed = nn.Embedding(vocab_size, d, padding_idx=PAD_ID)
        self.layers = nn.ModuleList(DecoderLayer(d, heads, ff, dropout) for _ in range(layers))
        self.norm, self.dropout = nn.LayerNorm(d), nn.Dropout(dropout)
        self.output = nn.Linear(d, vocab_size)
        if tied_embeddings:
            self.output.weight = self.embed.weight

    def init_state(self, memory: torch.Tensor, final: None, mask: torch.Tensor
                   ) -> TransformerState:
        """memory (b, s, d), mask (b, s) -> the state before the first target position."""
        cross = [layer.cross_attention.kv(memory) for layer in self.layers]
        empty = memory.new_zeros(memory.size(0), self.layers[0].self_attention.heads, 0,
                                 self.layers[0].self_attention.dh)
        return TransformerState([(empty, empty)] * len(self.layers), cross, memory, mask)

    def _inputs(self, ids: torch.Tensor, start: int) -> torch.Tensor:
        """(b, t) ids at positions start.. -> (b, t, d) scaled embeddings plus positions."""
        x = self.embed(ids) * math.sqrt(self.d)
        return self.dropout(x + positions(ids.size(1), self.d, start, device=ids.device))

    def forward(self, tgt_in: torch.Tensor, state: TransformerState
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: tgt_in (b, t) -> hidden (b, t, d) and the last layer's
        cross-attention (b, t, s)."""
        t = tgt_in.size(1)
        causal = torch.ones(t, t, dtype=torch.bool, device=tgt_in.device).tril()  # (t, t)
        src_mask = state.mask[:, None, None, :]  # (b, 1, 1, s)
        x = self._inputs(tgt_in, 0)
        for layer, cross in zip(self.layers, state.cross):
            x, weights, _ = layer(x, None, causal, cross, src_mask)
        return self.norm(x), weights

    def attentional_step(self, prev: torch.Tensor, state: TransformerState
                         ) -> tuple[torch.Tensor, TransformerState, torch.Tensor]:
        """prev (b,) ids -> hidden (b, d), the state with this position cached, the last
        layer's cross-attention (b, s)."""
        x = self._inputs(prev.unsqueeze(1), state.step)  # (b, 1, d)
        src_mask = state.mask[:, None, None, :]
        everything = torch.ones(1, dtype=torch.bool, device=prev.device)  # past positions only
        cache = []  # per layer: (b, h, step + 1, dh) keys and values
        for layer, past, cross in zip(self.layers, state.cache, state.cross):
            x, weights, kv = layer(x, past, everything, cross, src_mask)
            cache.append(kv)
        new = TransformerState(cache, state.cross, state.memory, state.mask, state.step + 1,
                               state.src_ext, state.n_ext)
        return self.norm(x)[:, 0], new, weights[:, 0]


def reset_parameters(module: nn.Module) -> None:
    """Xavier-uniform matrices, zero biases, LayerNorm at identity, embeddings N(0, d^-1/2)."""
    for name, p in module.named_parameters():
        if isinstance(module.get_submodule(name.rsplit(".", 1)[0]), nn.Embedding):
            nn.init.normal_(p, 0.0, p.size(-1) ** -0.5)
        elif p.dim() > 1:
            nn.init.xavier_uniform_(p)
        elif name.endswith("bias"):
            nn.init.zeros_(p)
        else:
            nn.init.ones_(p)
