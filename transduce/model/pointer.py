"""Pointer-generator copying and coverage (See et al., 2017), the parts outside the decoder.

With ``model.copy`` the output distribution mixes generating from the target vocabulary with
copying a source position, weighted by the generation probability ``p_gen``:

    P(w) = p_gen * P_vocab(w) + (1 - p_gen) * sum of attention over source positions holding w

Source tokens missing from the target vocabulary get temporary ids ``V, V+1, ...`` (``V`` = target
vocabulary size), numbered per sentence in order of first appearance: the *extended vocabulary*.
They can be produced (by copying only) and are mapped back to their strings at output. The decoder
reads every extended id as ``<unk>``.

With ``model.coverage`` the coverage vector (the sum of past attention) feeds the attention score
(see ``attention.py``), and :func:`coverage_loss` penalises attending again to covered positions.
"""
from __future__ import annotations

import torch

from transduce.data.vocabulary import EOS_ID, PAD_ID, UNK_ID, Vocabulary

TINY = 1e-12  # floor for probabilities before the log


def source_ext_ids(src_tokens: list[str], vocab: Vocabulary) -> tuple[list[int], list[str]]:
    """Source tokens as target-side ids: vocabulary ids, or extended ids ``len(vocab) + j`` for
    the j-th distinct out-of-vocabulary token. Returns (ids, the out-of-vocabulary tokens)."""
    oovs: dict[str, int] = {}
    ids = []
    for tok in src_tokens:
        i = vocab.stoi.get(tok)
        if i is None or i == UNK_ID:
            i = len(vocab) + oovs.setdefault(tok, len(oovs))
        ids.append(i)
    return ids, list(oovs)


def target_ext_ids(tgt_tokens: list[str], vocab: Vocabulary, oovs: list[str]) -> list[int]:
    """Target tokens as ids for the copy loss: out-of-vocabulary tokens found in the source get
    their extended id (they can be copied), the others ``<unk>``."""
    ext = {tok: len(vocab) + j for j, tok in enumerate(oovs)}
    get = vocab.stoi.get
    return [get(t, ext.get(t, UNK_ID)) for t in tgt_tokens]


def decode_ext(ids: list[int], vocab: Vocabulary, oovs: list[str]) -> list[str]:
    """Extended ids back to tokens (as :meth:`Vocabulary.decode`, plus copied tokens)."""
    n = len(vocab)
    out = []
    for i in ids:
        if i == EOS_ID:
            break
        if i >= n:
            out.append(oovs[i - n] if i - n < len(oovs) else vocab.itos[UNK_ID])
        else:
            out.extend(vocab.decode([i]))
    return out


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


def copy_nll(logits: torch.Tensor, attn: torch.Tensor, p_gen: torch.Tensor,
             src_ext: torch.Tensor, target: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Summed negative log-likelihood of ``target`` under the mixed distribution.

    The probability of each target token is computed directly (no extended-vocabulary tensor):
    the generator's share plus the attention on the source positions that hold it. Label smoothing
    ``eps`` applies to the generator's distribution.

    Args:
        logits: (batch, tgt_len, vocab); attn: (batch, tgt_len, src_len); p_gen: (batch, tgt_len,
            1); src_ext: (batch, src_len); target: (batch, tgt_len) extended ids, PAD_ID ignored.
    """
    vocab = logits.size(-1)
    logits = logits.float()
    lse = logits.logsumexp(dim=-1)  # (batch, tgt_len); no log-softmax tensor of vocab size
    in_vocab = target < vocab
    gen = (logits.gather(-1, target.clamp(max=vocab - 1).unsqueeze(-1)).squeeze(-1) - lse).exp()
    gen = gen.masked_fill(~in_vocab, 0.0)  # (batch, tgt_len) generator's probability
    hits = src_ext.unsqueeze(1) == target.unsqueeze(-1)  # (batch, tgt_len, src_len)
    copied = (attn.float() * hits).sum(-1)  # (batch, tgt_len)
    g = p_gen.squeeze(-1).float()
    nll = -(g * gen + (1.0 - g) * copied).clamp_min(TINY).log()  # (batch, tgt_len)
    if eps:
        nll = (1.0 - eps) * nll - eps * (logits.mean(dim=-1) - lse)  # mean log P_vocab
    return nll.masked_fill(target == PAD_ID, 0.0).sum()


def coverage_loss(attn: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Summed sum_i min(a_t,i, c_t,i), c_t = the attention of the steps before t (See et al.).

    Args:
        attn: (batch, tgt_len, src_len); target: (batch, tgt_len), PAD_ID marks padding.
    """
    attn = attn.float()
    cover = attn.cumsum(dim=1) - attn  # (batch, tgt_len, src_len) coverage before each step
    per_step = torch.minimum(attn, cover).sum(-1)  # (batch, tgt_len)
    return per_step.masked_fill(target == PAD_ID, 0.0).sum()
