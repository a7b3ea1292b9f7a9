"""Pointer-generator copying (See et al., 2017): the output distribution of a copy model.

With ``model.copy`` the output distribution mixes generating from the target vocabulary with
copying a source position, weighted by the generation probability ``p_gen``:

    P(w) = p_gen * P_vocab(w) + (1 - p_gen) * sum of attention over source positions holding w

Copied words may lie outside the target vocabulary: they have ids of the *extended vocabulary*
(``data/vocabulary.py``), which the decoder reads as ``<unk>``. The training loss of this
distribution is ``training/loss.py``'s :func:`copy_nll`; coverage (the sum of past attention in
the score) is in ``attention.py``, its loss in ``training/loss.py``.
"""
from __future__ import annotations

import torch


def mix(logits: torch.Tensor, attn: torch.Tensor, p_gen: torch.Tensor, src_ext: torch.Tensor,
        n_ext: int) -> torch.Tensor:
    """The final distribution, as log-probabilities over the extended vocabulary.

    Args:
        logits: (rows, vocab); attn: (rows, src_len); p_gen: (rows, 1); src_ext: (rows, src_len)
            extended ids of the source tokens; n_ext: extended ids in use (width = vocab + n_ext).
    Returns:
        (rows, vocab + n_ext) log-probabilities; ``-inf`` where nothing can be produced.
    """
    p_vocab = torch.softmax(logits.float(), dim=-1) * p_gen  # (rows, vocab)
    p = torch.cat([p_vocab, p_vocab.new_zeros(p_vocab.size(0), n_ext)], dim=-1)
    p = p.scatter_add(1, src_ext, attn.float() * (1.0 - p_gen))  # (rows, vocab + n_ext)
    return p.log()
