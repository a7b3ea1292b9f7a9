"""Training losses: label-smoothed cross-entropy (softmax or copy model), the coverage loss and
the doubly stochastic attention regularizer; :func:`training_loss` adds up what the config asks.

Each returns a sum over the batch's target tokens (padding ignored); the trainer divides by the
number of target tokens.
"""
from __future__ import annotations

import torch

from transduce.config import TrainingConfig
from transduce.data.batching import Batch
from transduce.data.vocabulary import PAD_ID
from transduce.model.seq2seq import Output

TINY = 1e-12  # floor for probabilities before the log


class _SmoothedNLL(torch.autograd.Function):
    """Summed label-smoothed cross-entropy, as ``F.cross_entropy(..., label_smoothing=eps,
    ignore_index=PAD_ID, reduction="sum")``, in a fraction of the memory.

    The output layer's (tokens x vocabulary) tensors dominate training memory at large
    vocabularies: autograd's cross-entropy needs about three of them at once (measured: 3.0x the
    logits' size at its peak), this one about one (1.0x). The forward pass turns the logits into
    log-probabilities in place (row chunks bound the temporary), and the backward pass turns
    those into the gradient in place: ``softmax - (1 - eps) * onehot(target) - eps / vocab``,
    zero at padding. The logits' memory is reused: no autograd node may have saved them (if one
    did, backward raises instead of computing a wrong gradient).
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
        logp = logits.detach()  # (tokens, vocab): the same memory
        lse = torch.cat([torch.logsumexp(rows, dim=-1) for rows in logp.split(2048)])
        logp.sub_(lse.unsqueeze(1))
        keep = target != PAD_ID  # (tokens,)
        nll = -logp.gather(1, target.unsqueeze(1)).squeeze(1)
        loss = (1.0 - eps) * nll - eps * logp.mean(dim=-1) if eps else nll
        ctx.save_for_backward(logp, target, keep)
        ctx.eps = eps
        return loss.masked_fill(~keep, 0.0).sum()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        logp, target, keep = ctx.saved_tensors
        eps = ctx.eps
        grad = logp.exp_()  # the softmax, in the saved tensor's memory (used only once)
        if eps:
            grad.sub_(eps / grad.size(-1))
        grad.scatter_add_(1, target.unsqueeze(1),
                          torch.full_like(grad[:, :1], -(1.0 - eps)))
        grad.mul_((keep.to(grad.dtype) * grad_out).unsqueeze(1))
        return grad, None, None


def smoothed_nll(logits: torch.Tensor, target: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """logits: (tokens, vocab) float, overwritten with log-probabilities; target: (tokens,) ids,
    PAD_ID ignored -> the summed loss."""
    return _SmoothedNLL.apply(logits, target, float(eps))


def nll(out: Output, b: Batch, eps: float = 0.0) -> torch.Tensor:
    """Summed (label-smoothed) NLL of ``b``'s targets: under the copy model's mixed distribution,
    or the softmax of the logits (whose memory the loss reuses)."""
    if out.p_gen is not None:
        return copy_nll(out.logits, out.attention, out.p_gen, b.src_ext, b.tgt_out, eps)
    return smoothed_nll(out.logits.float().view(-1, out.logits.size(-1)), b.tgt_out.view(-1), eps)


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


def attention_reg_loss(attn: torch.Tensor, target: torch.Tensor,
                       src_lens: torch.Tensor) -> torch.Tensor:
    """Show, Attend and Tell's doubly stochastic regularizer, summed over the batch:
    sum_i (T/L - sum_t a_t,i)^2 over the L source positions (image cells) i, for an output of T
    steps, so that every position gets about as much attention over the whole output as any
    other. Xu et al. (2015) write 1 for T/L; since each step's attention sums to 1, the two
    differ by a constant only (the same gradient), but with 1 an output much shorter than the
    grid (a 5-token name over 64 cells) carries a floor of about L in the loss, which the log's
    loss and perplexity then show; with T/L an even cover costs 0.

    Args:
        attn: (batch, tgt_len, src_len); target: (batch, tgt_len), PAD_ID marks padding;
            src_lens: (batch,) source positions in use (padding beyond is left out).
    """
    steps = (target != PAD_ID).unsqueeze(-1)  # (batch, tgt_len, 1)
    total = (attn.float() * steps).sum(1)  # (batch, src_len) attention over the output
    lens = src_lens.to(attn.device)
    real = torch.arange(attn.size(-1), device=attn.device) < lens.unsqueeze(1)
    share = steps.sum(1).float() / lens.unsqueeze(1)  # (batch, 1) T / L: the even cover
    return ((share - total) ** 2).masked_fill(~real, 0.0).sum()


def training_loss(out: Output, b: Batch, t: TrainingConfig, coverage: bool) -> torch.Tensor:
    """The summed training loss of batch ``b``: smoothed NLL, plus the weighted coverage loss
    (``coverage``: model.coverage) and attention regularizer (``training.attention_reg``)."""
    loss = nll(out, b, t.label_smoothing)
    if coverage:
        loss = loss + t.coverage_weight * coverage_loss(out.attention, b.tgt_out)
    if t.attention_reg:
        loss = loss + t.attention_reg * attention_reg_loss(out.attention, b.tgt_out, b.src_lens)
    return loss
