"""The encoder-decoder, built from the ``model`` section of the config."""
from __future__ import annotations

import torch
from torch import nn

from transduce.config import ModelConfig
from transduce.data.vocabulary import PAD_ID
from transduce.model.decoders import Decoder, DecoderState
from transduce.model.encoders import Encoder


class Seq2Seq(nn.Module):
    def __init__(self, cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int):
        super().__init__()
        self.encoder = Encoder(src_vocab_size, cfg.embedding_size, cfg.encoder_hidden_size,
                               cfg.cell, cfg.layers, cfg.bidirectional, cfg.dropout)
        self.decoder = Decoder(tgt_vocab_size, cfg.embedding_size, cfg.decoder_hidden_size,
                               self.encoder.output_size, cfg.cell, cfg.layers, cfg.attention,
                               cfg.input_feeding, cfg.dropout, cfg.bridge, cfg.tied_embeddings)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(-0.1, 0.1) everywhere (the classic RNN NMT choice); pad embeddings zero."""
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)
        with torch.no_grad():
            self.encoder.embed.weight[PAD_ID].zero_()
            self.decoder.embed.weight[PAD_ID].zero_()

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> DecoderState:
        """src: (batch, src_len), src_lens: (batch,) on CPU -> the decoder's initial state."""
        memory, final = self.encoder(src, src_lens)  # (batch, src_len, encoder_size)
        mask = src != PAD_ID  # (batch, src_len)
        return self.decoder.init_state(memory, final, mask)

    def forward(self, src: torch.Tensor, src_lens: torch.Tensor, tgt_in: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher-forced logits (batch, tgt_len, vocab) and attention (batch, tgt_len, src_len)."""
        state = self.encode(src, src_lens)
        hidden, attn = self.decoder(tgt_in, state)  # (batch, tgt_len, hidden)
        return self.decoder.output(hidden), attn


def build_model(cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int) -> Seq2Seq:
    return Seq2Seq(cfg, src_vocab_size, tgt_vocab_size)
