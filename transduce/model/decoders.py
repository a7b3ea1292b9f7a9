"""The attentional RNN decoder (Luong et al., 2015), with optional input feeding.

At step t, with s the RNN state and c the attention context over the encoder outputs:

    s_t  = RNN([y_{t-1}; h~_{t-1}], s_{t-1})      (input feeding; just y_{t-1} without it)
    c_t  = attention(s_t, encoder outputs)
    h~_t = tanh(W_c [s_t; c_t])                   (the "attentional vector")
    p(y_t) = softmax(W_o h~_t)

The RNN weights live in one ``nn.LSTM``/``nn.GRU``/``nn.RNN`` module. :meth:`Decoder.recurrence`
chooses how training runs the steps, in one place:

- ``"sequence"`` (no input feeding): that module over all steps in one call, then attention for
  all steps in one product (step by step with coverage: each step's attention needs the last);
- ``"hand-written"`` (one-layer LSTM, input feeding, attention without coverage, no autocast):
  the loop as one autograd function with a hand-written backward (``recurrence.py``);
- ``"autograd"`` (all else): step by step under autograd, each step the one decoding runs
  (:meth:`Decoder.attentional_step`); the reference the hand-written loop is tested against.

Options from See et al. (2017), see ``pointer.py``: ``copy`` adds the generation probability
p_gen = sigmoid(w [h~_t; y_{t-1}] + b); ``coverage`` feeds the sum of past attention to the score.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

from transduce.data.vocabulary import PAD_ID, UNK_ID
from transduce.model.attention import Attention
from transduce.model.encoders import RNNS
from transduce.model.recurrence import InputFeedingLSTM

Hidden = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]  # (batch, hidden) or LSTM (h, c)
StepOut = tuple[torch.Tensor, "DecoderState", torch.Tensor | None]  # h~, state, attention
CELL_FNS = {"lstm": torch.lstm_cell, "gru": torch.gru_cell, "rnn": torch.rnn_tanh_cell}


@dataclass
class DecoderState:
    """Everything a decoder step needs; rows are sentences (or beam hypotheses)."""

    hidden: list[Hidden]  # one entry per layer
    feed: torch.Tensor | None  # (batch, hidden) previous attentional vector, if input feeding
    memory: torch.Tensor  # (batch, src_len, encoder_size) encoder outputs
    keys: torch.Tensor | None  # (batch, src_len, hidden) attention keys, projected once
    mask: torch.Tensor  # (batch, src_len) True at real source tokens
    coverage: torch.Tensor | None = None  # (batch, src_len) attention so far, with coverage
    src_ext: torch.Tensor | None = None  # (batch, src_len) extended source ids, with copy
    n_ext: int = 0  # extended ids in use in this batch, with copy

    def select(self, index: torch.Tensor, source: bool = True) -> "DecoderState":
        """Keep/reorder/repeat rows: beam expansion, reordering, dropping finished sentences.

        ``source=False`` leaves the encoder side (memory, keys, mask) as it is: reordering
        hypotheses among the beams of the same sentence does not change their source rows."""
        pick = (lambda t: None if t is None else t.index_select(0, index))
        hidden = [tuple(pick(x) for x in h) if isinstance(h, tuple) else pick(h)
                  for h in self.hidden]
        src = pick if source else (lambda t: t)
        return DecoderState(hidden, pick(self.feed), src(self.memory), src(self.keys),
                            src(self.mask), pick(self.coverage), src(self.src_ext), self.n_ext)


class Decoder(nn.Module):

    def __init__(self, vocab_size: int, embedding_size: int, hidden_size: int, encoder_size: int,
                 cell: str = "lstm", layers: int = 1, attention: str = "mlp",
                 input_feeding: bool = True, dropout: float = 0.0, bridge: str = "bridge",
                 tied_embeddings: bool = False, copy: bool = False, coverage: bool = False):
        super().__init__()
        self.vocab_size, self.embedding_size = vocab_size, embedding_size
        self.cell, self.layers, self.hidden_size = cell, layers, hidden_size
        self.input_feeding, self.bridge_kind, self.coverage = input_feeding, bridge, coverage
        self.embed = nn.Embedding(vocab_size, embedding_size, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        rnn_input = embedding_size + (hidden_size if input_feeding else 0)
        self.rnn = RNNS[cell](rnn_input, hidden_size, layers, batch_first=True,
                              dropout=dropout if layers > 1 else 0.0)
        self.attention = Attention(attention, hidden_size, encoder_size, coverage) \
            if attention != "none" else None
        combine_in = hidden_size + (encoder_size if self.attention is not None else 0)
        self.combine = nn.Linear(combine_in, hidden_size, bias=False)
        self.output = nn.Linear(hidden_size, vocab_size)
        if tied_embeddings:
            self.output.weight = self.embed.weight
        self.bridge = nn.Linear(encoder_size, hidden_size) if bridge == "bridge" else None
        self.copy_gate = nn.Linear(hidden_size + embedding_size, 1) if copy else None

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Target ids -> embeddings; extended (copied) ids read as ``<unk>``."""
        if self.copy_gate is not None:
            ids = ids.masked_fill(ids >= self.vocab_size, UNK_ID)
        return self.embed(ids)

    def gate(self, h: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        """p_gen from attentional vectors h (..., hidden) and previous ids (...) -> (..., 1)."""
        return torch.sigmoid(self.copy_gate(torch.cat([h, self._embed(prev)], dim=-1)))

    # ---- initial state -------------------------------------------------------------------
    def init_state(self, memory: torch.Tensor, final: Hidden, mask: torch.Tensor) -> DecoderState:
        """
        Args:
            memory: (batch, src_len, encoder_size); final: (layers, batch, encoder_size) or an
                LSTM pair of those; mask: (batch, src_len).
        """
        final_h = final[0] if isinstance(final, tuple) else final
        if self.bridge_kind == "bridge":
            h = torch.tanh(self.bridge(final_h))  # (layers, batch, hidden)
            hidden = [(h[i], h[i]) if self.cell == "lstm" else h[i] for i in range(self.layers)]
        elif self.bridge_kind == "last":
            hidden = [(final[0][i], final[1][i]) if self.cell == "lstm" else final[i]
                      for i in range(self.layers)]
        else:
            zeros = memory.new_zeros(memory.size(0), self.hidden_size)
            hidden = [(zeros, zeros) if self.cell == "lstm" else zeros for _ in range(self.layers)]
        feed = memory.new_zeros(memory.size(0), self.hidden_size) if self.input_feeding else None
        keys = self.attention.project_keys(memory) if self.attention is not None else None
        coverage = memory.new_zeros(mask.shape) if self.coverage else None
        return DecoderState(hidden, feed, memory, keys, mask, coverage)

    # ---- one step: decoding, and the autograd loop of training -----------------------------
    def attentional_step(self, prev: torch.Tensor, state: DecoderState) -> StepOut:
        """prev (batch,) previous token ids -> the attentional vector (batch, hidden) (the logits
        are ``self.output`` of it), the next state, attention (batch, src_len) or None."""
        return self._advance(*self._layer0_input(self._embed(prev), state), state)

    def _layer0_input(self, emb: torch.Tensor, state: DecoderState
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x, w, b), layer 0's input product being x @ w.T + b, from embeddings (batch, emb)."""
        x = torch.cat([emb, state.feed], dim=-1) if self.input_feeding else emb  # (batch, in)
        return x, self.rnn.weight_ih_l0, self.rnn.bias_ih_l0

    def _advance(self, x: torch.Tensor, w_ih: torch.Tensor, b_ih: torch.Tensor,
                 state: DecoderState, drop: torch.Tensor | None = None) -> StepOut:
        """One step through all layers, attention and combine, layer 0's input product being
        ``x @ w_ih.T + b_ih`` (``b_ih`` may be (batch, gates * hidden) on CPU: see
        :meth:`_autograd_loop`). ``drop``: (batch, 1, combine_in) or None. Returns as
        :meth:`attentional_step`."""
        fn, r, hidden = CELL_FNS[self.cell], self.rnn, []
        for i, hx in enumerate(state.hidden):
            if i > 0:
                w_ih, b_ih = getattr(r, f"weight_ih_l{i}"), getattr(r, f"bias_ih_l{i}")
                x = F.dropout(x, r.dropout, self.training)
            h = fn(x, hx, w_ih, getattr(r, f"weight_hh_l{i}"), b_ih, getattr(r, f"bias_hh_l{i}"))
            hidden.append(h)
            x = h[0] if isinstance(h, tuple) else h  # (batch, hidden)
        h, a = self._attend(x.unsqueeze(1), state, drop, state.coverage)
        h = h.squeeze(1)  # (batch, hidden)
        a = a.squeeze(1) if a is not None else None  # (batch, src_len)
        coverage = state.coverage + a if state.coverage is not None else None
        return h, DecoderState(hidden, h if self.input_feeding else None, state.memory, state.keys,
                               state.mask, coverage, state.src_ext, state.n_ext), a

    def _attend(self, s: torch.Tensor, state: DecoderState, drop: torch.Tensor | None = None,
                coverage: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """s: (batch, steps, hidden) -> attentional vectors (batch, steps, hidden), weights.

        ``drop`` is a precomputed dropout mask for the combined input (input-feeding loops);
        without it, ordinary dropout applies. ``coverage``: (batch, src_len), one step only."""
        weights, x = None, s
        if self.attention is not None:
            cov = coverage.unsqueeze(1) if coverage is not None else None  # (batch, 1, src_len)
            context, weights = self.attention(s, state.keys, state.memory, state.mask,
                                              coverage=cov)
            x = torch.cat([s, context], dim=-1)  # (batch, steps, hidden + encoder_size)
        x = x * drop if drop is not None else self.dropout(x)
        return torch.tanh(self.combine(x)), weights  # (batch, steps, hidden)

    # ---- training: all steps, teacher forcing ---------------------------------------------
    def recurrence(self, device_type: str) -> str:
        """How :meth:`forward` runs the steps on ``device_type``: ``"sequence"``,
        ``"hand-written"`` or ``"autograd"`` (module docstring). The one place that chooses."""
        if not self.input_feeding:
            return "sequence"
        # the hand-written loop runs in one dtype; the autograd loop keeps autocast's fp32 sums
        if (self.cell == "lstm" and self.layers == 1 and self.attention is not None
                and not self.coverage and not torch.is_autocast_enabled(device_type)):
            return "hand-written"
        return "autograd"

    def forward(self, tgt_in: torch.Tensor, state: DecoderState
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """
        Args:
            tgt_in: (batch, tgt_len) previous tokens (``<s>`` first).
        Returns:
            attentional vectors (batch, tgt_len, hidden) and attention (batch, tgt_len, src_len).
        """
        emb = self.dropout(self._embed(tgt_in))  # (batch, tgt_len, emb)
        run = {"sequence": self._sequence, "hand-written": self._hand_written_loop,
               "autograd": self._autograd_loop}
        return run[self.recurrence(emb.device.type)](emb, state)

    def _sequence(self, emb: torch.Tensor, state: DecoderState
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """No input feeding: one RNN call over emb (batch, tgt_len, emb), then attention."""
        hidden = state.hidden  # -> hx (layers, batch, hidden), a pair of those for LSTM
        hx = tuple(map(torch.stack, zip(*hidden))) if self.cell == "lstm" else torch.stack(hidden)
        s, _ = self.rnn(emb, hx)  # (batch, tgt_len, hidden)
        if state.coverage is None:
            return self._attend(s, state)
        cov, outs, attns = state.coverage, [], []
        for s_t in s.unbind(1):  # coverage: each step's attention depends on the last
            h, a = self._attend(s_t.unsqueeze(1), state, coverage=cov)  # (batch, 1, hidden)
            cov = cov + a.squeeze(1)
            outs.append(h)
            attns.append(a)
        return torch.cat(outs, dim=1), torch.cat(attns, dim=1)

    def _autograd_loop(self, emb: torch.Tensor, state: DecoderState
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Input feeding, step by step under autograd, each step :meth:`_advance` as in decoding.

        The one branch on the device: CPU cells accept a (batch, gates) bias, so there the
        embedding half of layer 0's input product is computed for all steps in one GEMM and
        passed as each step's bias. CUDA's fused cells take a 1-D bias only; there each step's
        input is [embedding; fed vector], as in decoding."""
        drop = self._combine_dropout(emb)  # (tgt_len, batch, combine_in) or None
        ahead = emb.device.type == "cpu"
        if ahead:
            w_emb, w_feed = self._layer0_weights()
            emb = F.linear(emb, w_emb, self.rnn.bias_ih_l0)  # (batch, tgt_len, gates * hidden)
        drops = drop.unsqueeze(2).unbind(0) if drop is not None else [None] * emb.size(1)
        outs, attns = [], []
        # unbind, not x[:, t]: its backward is one stack, not one zero-filled copy per step
        for x_t, drop_t in zip(emb.unbind(1), drops):
            x0 = (state.feed, w_feed, x_t) if ahead else self._layer0_input(x_t, state)
            h, state, a = self._advance(*x0, state, drop_t)  # (batch, hidden)
            outs.append(h)
            attns.append(a)
        attn = torch.stack(attns, dim=1) if self.attention is not None else None
        return torch.stack(outs, dim=1), attn

    def _hand_written_loop(self, emb: torch.Tensor, state: DecoderState
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """recurrence.py's loop of a one-layer LSTM, on this decoder's weights."""
        r, drop = self.rnn, self._combine_dropout(emb)
        w_emb, w_feed = self._layer0_weights()
        pre = F.linear(emb.transpose(0, 1), w_emb, r.bias_ih_l0 + r.bias_hh_l0)  # (steps, B, G)
        w = torch.cat([w_feed, r.weight_hh_l0], dim=1)  # (gates * hidden, 2 * hidden)
        h0, c0 = state.hidden[0]
        return InputFeedingLSTM.apply(pre, h0, c0, w, state.keys, state.memory, state.mask,
                                      *self.attention.score_weights(), self.combine.weight, drop)

    def _layer0_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer 0's input weights split into the embedding part and the fed-vector part."""
        w = self.rnn.weight_ih_l0  # (gates * hidden, embedding + hidden)
        return w[:, :self.embedding_size], w[:, self.embedding_size:]

    def _combine_dropout(self, emb: torch.Tensor) -> torch.Tensor | None:
        """Dropout masks of the combine layer's input for all steps of emb (batch, steps, emb) in
        one draw (one RNG call, not one per step): (steps, batch, combine_in), scaled by
        1/(1-p); None in eval."""
        p = self.dropout.p
        if not self.training or p == 0:
            return None
        size = (emb.size(1), emb.size(0), self.combine.in_features)
        return emb.new_empty(size).bernoulli_(1 - p).div_(1 - p)
