"""The RNN encoder: embeddings, then a (bi)directional multi-layer RNN over packed sequences."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from transduce.data.vocabulary import PAD_ID

RNNS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class Encoder(nn.Module):
    """Reads a padded source batch; padding never influences any output (packed sequences)."""

    def __init__(self, vocab_size: int, embedding_size: int, hidden_size: int, cell: str = "lstm",
                 layers: int = 1, bidirectional: bool = True, dropout: float = 0.0):
        super().__init__()
        self.cell = cell
        self.layers = layers
        self.directions = 2 if bidirectional else 1
        self.output_size = hidden_size * self.directions
        self.embed = nn.Embedding(vocab_size, embedding_size, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        self.rnn = RNNS[cell](embedding_size, hidden_size, layers, batch_first=True,
                              bidirectional=bidirectional, dropout=dropout if layers > 1 else 0.0)

    def forward(self, src: torch.Tensor, src_lens: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        """
        Args:
            src: (batch, src_len) token ids; src_lens: (batch,) lengths on CPU.
        Returns:
            outputs: (batch, src_len, directions * hidden), zeros at padded positions.
            final: (layers, batch, directions * hidden) last states, both directions
                concatenated; a pair (h, c) of those for LSTM.
        """
        emb = self.dropout(self.embed(src))  # (batch, src_len, emb)
        autocast = torch.is_autocast_enabled(src.device.type)
        # oneDNN's packed CPU RNN has no bf16 kernel under autocast: the encoder runs in fp32
        packed = pack_padded_sequence(emb.float() if autocast else emb, src_lens,
                                      batch_first=True, enforce_sorted=False)
        with torch.autocast(src.device.type, enabled=False):
            packed_out, final = self.rnn(packed)
        outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=src.size(1))
        if self.cell == "lstm":
            return outputs, (self._join(final[0]), self._join(final[1]))
        return outputs, self._join(final)

    def _join(self, state: torch.Tensor) -> torch.Tensor:
        # (layers * directions, batch, hidden) -> (layers, batch, directions * hidden)
        batch = state.size(1)
        state = state.view(self.layers, self.directions, batch, -1)
        return torch.cat(state.unbind(1), dim=-1)
