"""Decoding with several models at once: at each step their log-probabilities are averaged.

An :class:`Ensemble` looks like one :class:`~transduce.model.seq2seq.Seq2Seq` to the search
(``encode``, ``step``, a state with ``select``), so greedy, beam search and sampling run on it
unchanged. The models must share their vocabularies (the same ids mean the same tokens on both
sides); copy models are refused, since their extended vocabularies differ per model.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from transduce.decode.translator import Translator
from transduce.errors import TransduceError
from transduce.model.decoders import DecoderState
from transduce.model.seq2seq import Seq2Seq


@dataclass
class EnsembleState:
    """One decoder state per model; rows are the same sentences (or hypotheses) in each."""

    states: list[DecoderState]

    @property
    def keys(self) -> torch.Tensor | None:  # the search asks whether attention exists
        return self.states[0].keys

    def select(self, index: torch.Tensor, source: bool = True) -> "EnsembleState":
        return EnsembleState([s.select(index, source) for s in self.states])


class Ensemble(nn.Module):
    """The models' mean log-probability at each step: log(1/n) + logsumexp of their
    log-probabilities (the log of the mean probability), attention averaged."""

    copy = False

    def __init__(self, models: Sequence[Seq2Seq]):
        super().__init__()
        self.members = nn.ModuleList(models)
        self.images = models[0].images

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor,
               src_ext: torch.Tensor | None = None) -> EnsembleState:
        return EnsembleState([m.encode(src, src_lens) for m in self.members])

    def step(self, prev: torch.Tensor, state: EnsembleState
             ) -> tuple[torch.Tensor, EnsembleState, torch.Tensor | None, None]:
        """prev (rows,) -> mean log-probabilities (rows, vocab), the next state, the mean
        attention (rows, src_len) or None."""
        outs = [m.step(prev, s) for m, s in zip(self.members, state.states)]
        logp = torch.stack([o[0] for o in outs])  # (models, rows, vocab)
        mean = torch.logsumexp(logp, dim=0) - torch.log(torch.tensor(float(len(outs))))
        attn = [o[2] for o in outs if o[2] is not None]
        return mean, EnsembleState([o[1] for o in outs]), \
            torch.stack(attn).mean(0) if len(attn) == len(outs) else None, None


def load_ensemble(model_dirs: Sequence[str | Path], checkpoint: str = "best",
                  device: str = "auto", quantize: str | None = None) -> Translator:
    """A :class:`Translator` decoding with the models of ``model_dirs`` together (the first
    one's tokenizers and decoding settings); one model_dir gives that model alone."""
    members = [Translator.load(d, checkpoint, device, quantize) for d in model_dirs]
    if len(members) == 1:
        return members[0]
    first = members[0]
    for d, t in zip(model_dirs[1:], members[1:]):
        for side, a, b in (("source", first.src, t.src), ("target", first.tgt, t.tgt)):
            if a.vocab.itos != b.vocab.itos:
                raise TransduceError(f"{d}: its {side} vocabulary differs from {model_dirs[0]}'s "
                                     f"({len(b.vocab)} vs {len(a.vocab)} types); an ensemble "
                                     "needs models trained with the same vocabularies")
        if t.model.copy or first.model.copy:
            raise TransduceError(f"{d if t.model.copy else model_dirs[0]}: a copy model cannot "
                                 "join an ensemble (each model's extended vocabulary is its "
                                 "own source's); decode it alone")
        if t.model.images != first.model.images:
            raise TransduceError(f"{d}: an image model and a text model cannot form an ensemble")
    return Translator(Ensemble([t.model for t in members]), first.src, first.tgt, first.config,
                      first.device)
