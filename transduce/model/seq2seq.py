"""The encoder-decoder, built from the ``model`` section of the config."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from transduce.config import ModelConfig
from transduce.data.vocabulary import BOS_ID, PAD_ID
from transduce.model import pointer
from transduce.model.cnn import ImageEncoder
from transduce.model.decoders import Decoder, DecoderState
from transduce.model.encoders import Encoder
from transduce.model.transformer import TransformerDecoder, TransformerEncoder
from transduce.model.transformer import reset_parameters as reset_transformer


class Output(NamedTuple):
    """Teacher-forced outputs for all target steps."""

    logits: torch.Tensor  # (batch, tgt_len, vocab)
    attention: torch.Tensor | None  # (batch, tgt_len, src_len)
    p_gen: torch.Tensor | None  # (batch, tgt_len, 1) generation probability, with model.copy


class Seq2Seq(nn.Module):
    def __init__(self, cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int):
        super().__init__()
        self.images = cfg.encoder == "cnn"  # sources are images (batch, 3, S, S): no vocabulary
        self.transformer = cfg.arch == "transformer"
        self.copy = cfg.copy is True  # "auto" is decided by the trainer; undecided it is off
        if self.transformer:
            d, ff = cfg.embedding_size, cfg.ff_size
            self.encoder = TransformerEncoder(src_vocab_size, d, cfg.heads, ff, cfg.layers,
                                              cfg.dropout)
            self.decoder = TransformerDecoder(tgt_vocab_size, d, cfg.heads, ff, cfg.layers,
                                              cfg.dropout, cfg.tied_embeddings)
            self.reset_parameters()
            return
        self.encoder = ImageEncoder(cfg.encoder_hidden_size, cfg.cell, cfg.layers, cfg.dropout) \
            if self.images else Encoder(src_vocab_size, cfg.embedding_size,
                                        cfg.encoder_hidden_size, cfg.cell, cfg.layers,
                                        cfg.bidirectional, cfg.dropout)
        self.decoder = Decoder(tgt_vocab_size, cfg.embedding_size, cfg.decoder_hidden_size,
                               self.encoder.output_size, cfg.cell, cfg.layers, cfg.attention,
                               cfg.input_feeding, cfg.dropout, cfg.bridge, cfg.tied_embeddings,
                               cfg.copy is True, cfg.coverage is True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(-0.1, 0.1) everywhere (the classic RNN NMT choice), the CNN encoder's own
        initialization, the Transformer's (model/transformer.py); pad embeddings zero."""
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)
        if self.transformer:
            reset_transformer(self)
        with torch.no_grad():
            if self.images:
                self.encoder.reset_parameters()
            else:
                self.encoder.embed.weight[PAD_ID].zero_()
            self.decoder.embed.weight[PAD_ID].zero_()

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor,
               src_ext: torch.Tensor | None = None) -> DecoderState:
        """src: (batch, src_len) ids or (batch, 3, S, S) images, src_lens: (batch,) on CPU ->
        the decoder's initial state. With copy, ``src_ext`` (batch, src_len) holds the source as
        extended target ids."""
        memory, final = self.encoder(src, src_lens)  # (batch, src_len or cells, encoder_size)
        # (batch, src_len): True at real tokens; every image cell is real
        mask = memory.new_ones(memory.shape[:2], dtype=torch.bool) if self.images \
            else src != PAD_ID
        state = self.decoder.init_state(memory, final, mask)
        if self.copy:
            if src_ext is None:
                raise ValueError("a copy model needs src_ext (the source as extended target ids)")
            state.src_ext = src_ext
            state.n_ext = max(0, int(src_ext.max()) + 1 - self.decoder.vocab_size)
        return state

    def forward(self, src: torch.Tensor, src_lens: torch.Tensor, tgt_in: torch.Tensor,
                src_ext: torch.Tensor | None = None) -> Output:
        """Teacher forcing: logits, attention and (with copy) p_gen for every target step."""
        state = self.encode(src, src_lens, src_ext)
        hidden, attn = self.decoder(tgt_in, state)  # (batch, tgt_len, hidden)
        p_gen = self.decoder.gate(hidden, tgt_in) if self.copy else None
        return Output(self.decoder.output(hidden), attn, p_gen)

    def step(self, prev: torch.Tensor, state: DecoderState
             ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None, torch.Tensor | None]:
        """One decoding step: prev (rows,) ids -> log-probabilities (rows, vocab [+ n_ext]), the
        next state, attention (rows, src_len) and p_gen (rows, 1) with copy. ``<pad>`` and
        ``<s>`` are never outputs: their log-probability is -inf."""
        h, state, attn = self.decoder.attentional_step(prev, state)  # (rows, hidden)
        logits = self.decoder.output(h).float()
        logits[:, [PAD_ID, BOS_ID]] = float("-inf")
        if not self.copy:
            return torch.log_softmax(logits, dim=-1), state, attn, None
        p_gen = self.decoder.gate(h, prev)
        return pointer.mix(logits, attn, p_gen, state.src_ext, state.n_ext), state, attn, p_gen


def build_model(cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int) -> Seq2Seq:
    return Seq2Seq(cfg, src_vocab_size, tgt_vocab_size)
