"""Search over a trained model: greedy, sampling and batched beam search.

All functions take a padded source batch and return, per sentence, hypotheses of target ids
(without ``</s>``). Each sentence is decoded independently of the others in its batch: the result
does not depend on the batch size, and sentences that finish leave the batch (their rows are
dropped from the decoder state), so the batch shrinks as it goes.

Copy models (``model.copy``) take ``src_ext``, the source as extended target ids; hypotheses may
then hold ids past the vocabulary (copied source tokens, see ``model/pointer.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from transduce.data.vocabulary import BOS_ID, EOS_ID
from transduce.decode.constraints import Constraints
from transduce.model.seq2seq import Seq2Seq


@dataclass
class Hypothesis:
    tokens: list[int]  # target ids, without </s>
    score: float  # log-probability divided by the length penalty (the ranking score)
    logprob: float
    attention: torch.Tensor | None = None  # (len(tokens) [+1 for </s>], src_len)
    copy: torch.Tensor | None = None  # (len(tokens) [+1],) probability of copying, copy models


def _record(attn: torch.Tensor | None, p_gen: torch.Tensor | None) -> torch.Tensor | None:
    """What ``return_attention`` keeps per step: attention (rows, src_len), with copy the
    probability of copying (1 - p_gen) as one more column."""
    if attn is None or p_gen is None:
        return attn
    return torch.cat([attn.float(), 1.0 - p_gen.float()], dim=-1)


def _split(record: torch.Tensor | None, src_len: int, copy: bool
           ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(steps, src_len [+1]) kept records -> attention (steps, src_len), copy probs (steps,)."""
    if record is None:
        return None, None
    return record[:, :src_len], (record[:, -1] if copy else None)


def max_lengths(src_lens: torch.Tensor, a: float, b: int) -> list[int]:
    """Maximum output length (tokens, without </s>) = a * src_len + b."""
    return [int(a * n + b) for n in src_lens.tolist()]


def length_penalty(length: int, alpha: float) -> float:
    """GNMT length penalty ((5 + length) / 6) ** alpha; length counts </s> when present."""
    return ((5.0 + length) / 6.0) ** alpha if alpha > 0 else 1.0


def _sample(logits: torch.Tensor, temperature: float, top_k: int, top_p: float,
            generator: torch.Generator | None) -> torch.Tensor:
    """(batch, vocab) logits -> (batch,) sampled ids, with temperature, top-k and nucleus."""
    logits = logits.float() / temperature
    if top_k > 0:
        kth = logits.topk(min(top_k, logits.size(-1)), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs > top_p  # keep the smallest set with mass >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


def _force_prefix(logp: torch.Tensor, sentences: list[int], prefix: list[list[int]] | None,
           t: int) -> None:
    """Prefix decoding, in place: a row of ``logp`` (rows, vocab) whose sentence
    (``sentences[row]``) has a prefix longer than ``t`` keeps only its prefix token at step ``t``
    (log-probability unchanged, every other token -inf)."""
    if prefix is None:
        return
    forced = [(row, prefix[i][t]) for row, i in enumerate(sentences) if t < len(prefix[i])]
    if forced:
        rows, toks = (torch.tensor(x, device=logp.device) for x in zip(*forced))
        kept = logp[rows, toks]
        logp[rows] = float("-inf")
        logp[rows, toks] = kept


@torch.inference_mode()
def greedy(model: Seq2Seq, src: torch.Tensor, src_lens: torch.Tensor, max_lens: list[int], *,
           sampling: bool = False, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
           generator: torch.Generator | None = None, return_attention: bool = False,
           src_ext: torch.Tensor | None = None, prefix: list[list[int]] | None = None,
           no_repeat_ngram_size: int = 0) -> list[Hypothesis]:
    """Greedy decoding (or ancestral sampling with ``sampling=True``), one hypothesis each.
    ``prefix``: per sentence, target ids the output must start with (then it goes on freely);
    ``no_repeat_ngram_size`` n > 0: no n-gram twice in an output."""
    batch = src.size(0)
    state = model.encode(src, src_lens, src_ext)
    prev = torch.full((batch,), BOS_ID, dtype=torch.long, device=src.device)
    active = list(range(batch))  # sentence index of each row still decoding
    tokens: list[list[int]] = [[] for _ in range(batch)]
    logprob = [0.0] * batch
    attn: list[list[torch.Tensor]] = [[] for _ in range(batch)]
    for t in range(max(max_lens)):
        logp, state, a, p_gen = model.step(prev, state)  # (rows, vocab [+ n_ext])
        _force_prefix(logp, active, prefix, t)
        _ban_repeats(logp, [tokens[i] for i in active], no_repeat_ngram_size)
        a = _record(a, p_gen)
        nxt = _sample(logp, temperature, top_k, top_p, generator) if sampling \
            else logp.argmax(-1)
        picked = logp.gather(1, nxt.unsqueeze(1)).squeeze(1).tolist()
        keep = []
        for row, (i, tok) in enumerate(zip(active, nxt.tolist())):
            logprob[i] += picked[row]
            if return_attention and a is not None:
                attn[i].append(a[row].float().cpu())
            if tok == EOS_ID:
                continue
            tokens[i].append(tok)
            if len(tokens[i]) < max_lens[i]:
                keep.append(row)
        if not keep:
            break
        if len(keep) < len(active):
            index = torch.tensor(keep, device=src.device)
            state, nxt = state.select(index), nxt.index_select(0, index)
            active = [active[r] for r in keep]
        prev = nxt
    out = []
    for i in range(batch):
        length = len(tokens[i]) + (1 if len(tokens[i]) < max_lens[i] else 0)
        a, c = _split(torch.stack(attn[i]) if attn[i] else None, int(src_lens[i]), model.copy)
        out.append(Hypothesis(tokens[i], logprob[i] / length_penalty(length, 0.0), logprob[i],
                              a, c))
    return out


def _ban_repeats(logp: torch.Tensor, histories: list[list[int]], n: int) -> None:
    """Set to -inf, in each row of ``logp`` (rows, vocab), the tokens that would repeat an n-gram
    of that row's history (n = 0: none)."""
    for row, history in enumerate(histories if n > 0 else []):
        banned = _banned_ngrams(history, n)
        if banned:
            logp[row, banned] = float("-inf")


def _banned_ngrams(history: list[int], n: int) -> list[int]:
    """Tokens that would repeat an n-gram already in ``history``."""
    if len(history) < n - 1 or n < 1:
        return []
    prefix = history[len(history) - n + 1:] if n > 1 else []
    return [history[i + n - 1] for i in range(len(history) - n + 1)
            if history[i:i + n - 1] == prefix]


def _take(x: torch.Tensor | None, rows: torch.Tensor, k: int) -> torch.Tensor | None:
    """The hypotheses at ``rows`` (flat indices sentence * k + beam) of an (n, k, ...) tensor,
    as (len(rows) // k, k, ...)."""
    return None if x is None else x.flatten(0, 1)[rows].unflatten(0, (-1, k))


@dataclass
class _Alive:
    """The live hypotheses of beam search: per-hypothesis tensors (sentences, k, ...), which
    every reordering takes together."""
    scores: torch.Tensor  # (n, k) log-probability so far
    history: torch.Tensor  # (n, k, steps) target ids so far
    attention: torch.Tensor | None  # (n, k, steps, src_len [+1]) if return_attention
    coverage: torch.Tensor | None  # (n, k, src_len) attention summed, if beta > 0

    def select(self, rows: torch.Tensor) -> "_Alive":
        """The hypotheses at ``rows`` (flat indices sentence * k + beam, k per sentence)."""
        k = self.scores.size(1)
        return _Alive(_take(self.scores, rows, k), _take(self.history, rows, k),
                      _take(self.attention, rows, k), _take(self.coverage, rows, k))

    def extend(self, rows: torch.Tensor, tokens: torch.Tensor, scores: torch.Tensor) -> "_Alive":
        """The hypotheses at ``rows``, extended by ``tokens`` (n, k) and now scoring ``scores``."""
        k = self.scores.size(1)
        history = torch.cat([_take(self.history, rows, k), tokens.unsqueeze(-1)], dim=-1)
        return _Alive(scores, history, _take(self.attention, rows, k),
                      _take(self.coverage, rows, k))


def coverage_penalty(coverage: torch.Tensor, beta: float) -> float:
    """GNMT coverage penalty beta * sum_i log(min(coverage_i, 1)) over source positions
    (coverage: (src_len,) attention summed over the output); 0 when beta is 0."""
    if beta <= 0:
        return 0.0
    return beta * float(coverage.clamp(1e-6, 1.0).log().sum())


@torch.inference_mode()
def beam_search(model: Seq2Seq, src: torch.Tensor, src_lens: torch.Tensor, max_lens: list[int],
                *, beam_size: int = 5, n_best: int = 1, alpha: float = 1.0,
                beta: float = 0.0, no_repeat_ngram_size: int = 0, return_attention: bool = False,
                src_ext: torch.Tensor | None = None, prefix: list[list[int]] | None = None,
                constraints: list[list[list[int]]] | None = None) -> list[list[Hypothesis]]:
    """Batched beam search with GNMT length penalty ``alpha`` and coverage penalty ``beta``;
    n-best list per sentence.

    Each step scores every (beam, token) extension, keeps the 2k best: those ending in ``</s>``
    among the top k are finished, the best k others stay alive. A sentence is done when it has k
    finished hypotheses or reaches its maximum length; done sentences leave the batch. Finished
    hypotheses are ranked by log-probability / length penalty + coverage penalty. ``prefix``:
    per sentence, target ids every hypothesis starts with (their log-probabilities count).
    ``constraints``: per sentence, target phrases (ids) every hypothesis must contain; the k kept
    alive are then chosen by dynamic beam allocation (``constraints.py``).
    """
    k = beam_size
    batch, device = src.size(0), src.device
    state = model.encode(src, src_lens, src_ext)
    track = beta > 0 and state.keys is not None  # attention summed per hypothesis
    state = state.select(
        torch.arange(batch, device=device).repeat_interleave(k))  # rows: (sentence, beam)
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: keep one
    alive = _Alive(scores, torch.zeros(batch, k, 0, dtype=torch.long, device=device), None,
                   torch.zeros(batch, k, state.mask.size(1), device=device) if track else None)
    prev = torch.full((batch * k,), BOS_ID, dtype=torch.long, device=device)
    active = list(range(batch))
    lengths = src_lens.tolist()
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    cons = Constraints(constraints, k) if constraints is not None else None
    for t in range(max(max_lens)):
        logp, state, a, p_gen = model.step(prev, state)  # (n * k, vocab [+ n_ext])
        n = len(active)
        vocab = logp.size(-1)
        _force_prefix(logp, [i for i in active for _ in range(k)], prefix, t)
        if alive.coverage is not None:
            alive.coverage = alive.coverage + a.float().view(n, k, -1)
        a = _record(a, p_gen)
        if no_repeat_ngram_size > 0:
            _ban_repeats(logp, alive.history.view(n * k, -1).tolist(), no_repeat_ngram_size)
        if cons is not None:
            moves = cons.moves()
            cons.restrict(logp, t, [max_lens[i] for i in active], moves)
        cand = (alive.scores.unsqueeze(-1) + logp.view(n, k, vocab)).view(n, k * vocab)
        top_scores, top_idx = cand.topk(min(2 * k, k * vocab), dim=-1)  # (n, 2k)
        beam_of, tok = top_idx // vocab, top_idx % vocab
        eos = tok == EOS_ID
        if return_attention and a is not None:
            a = a.float().view(n, k, 1, -1)
            alive.attention = a if alive.attention is None else \
                torch.cat([alive.attention, a], dim=2)
        # --- move finished hypotheses out: among the top k, those ending in </s>, and at the
        # maximum length all of them (python: few per step) ---
        at_max = [t + 1 >= max_lens[i] for i in active]
        ends = eos[:, :k] | torch.tensor(at_max, device=device).unsqueeze(1)
        ends &= top_scores[:, :k] != float("-inf")
        where = ends.nonzero()  # (hypotheses, 2): (row, rank), in row-major order
        if len(where):
            rows_f, ranks_f = where.unbind(1)
            beams_f = beam_of[rows_f, ranks_f]
            with_eos = eos[rows_f, ranks_f].tolist()
            fin_scores = top_scores[rows_f, ranks_f].tolist()
            fin_hist = alive.history[rows_f, beams_f].tolist()
            fin_last = tok[rows_f, ranks_f].tolist()
            fin_attn = alive.attention[rows_f, beams_f].cpu() \
                if alive.attention is not None else None
            fin_cover = alive.coverage[rows_f, beams_f] if alive.coverage is not None else None
            for j, row in enumerate(rows_f.tolist()):
                i = active[row]
                toks = fin_hist[j] if with_eos[j] else fin_hist[j] + [fin_last[j]]
                att, cp = _split(fin_attn[j] if fin_attn is not None else None, lengths[i],
                                 model.copy)
                length = len(toks) + (1 if with_eos[j] else 0)
                score = fin_scores[j] / length_penalty(length, alpha)
                if fin_cover is not None:
                    score += coverage_penalty(fin_cover[j, :lengths[i]], beta)
                finished[i].append(Hypothesis(toks, score, fin_scores[j], att, cp))
        # --- the k best non-finished extensions stay alive ---
        if cons is None:
            rank = torch.arange(top_idx.size(1), device=device).expand_as(top_idx)
            order = (rank + eos.long() * top_idx.size(1)).argsort(dim=-1)[:, :k]
            beam_sel, tok_sel = beam_of.gather(1, order), tok.gather(1, order)  # (n, k)
            sel_scores = top_scores.gather(1, order)
        else:
            beam_sel, tok_sel, sel_scores = cons.allocate(cand, top_idx, logp, moves)
            cons.advance(beam_sel, tok_sel)
        done = [row for row, i in enumerate(active) if len(finished[i]) >= k or at_max[row]]
        rows = (torch.arange(n, device=device).unsqueeze(1) * k + beam_sel).view(-1)
        alive = alive.extend(rows, tok_sel, sel_scores)
        # rows stay within each sentence's beams: the source side needs no copy
        state, prev = state.select(rows, source=False), tok_sel.view(-1)
        if done:
            done_set = set(done)
            keep = [r for r in range(n) if r not in done_set]
            if not keep:
                break
            keep_t = torch.tensor(keep, device=device)
            keep_rows = (keep_t.unsqueeze(1) * k + torch.arange(k, device=device)).view(-1)
            alive = alive.select(keep_rows)
            state, prev = state.select(keep_rows), prev[keep_rows]
            if cons is not None:
                cons.keep(keep)
            active = [active[r] for r in keep]
    return [sorted(f, key=lambda h: -h.score)[:n_best] for f in finished]


@torch.inference_mode()
def forced_logprob(model: Seq2Seq, src: torch.Tensor, src_lens: torch.Tensor,
                   tgt: list[list[int]], src_ext: torch.Tensor | None = None) -> list[float]:
    """Forced decoding: per sentence, the log-probability of the target ids ``tgt`` followed by
    ``</s>``, summed over the same steps as :func:`greedy` takes (so scoring greedy's output
    gives greedy's log-probability)."""
    batch = src.size(0)
    state = model.encode(src, src_lens, src_ext)
    prev = torch.full((batch,), BOS_ID, dtype=torch.long, device=src.device)
    total = [0.0] * batch
    for t in range(max(len(y) for y in tgt) + 1):
        logp, state, _, _ = model.step(prev, state)  # (batch, vocab [+ n_ext])
        gold = [y[t] if t < len(y) else EOS_ID for y in tgt]  # past the end: ignored below
        picked = logp.gather(1, torch.tensor(gold, device=src.device).unsqueeze(1)).squeeze(1)
        for i, value in enumerate(picked.tolist()):
            if t <= len(tgt[i]):
                total[i] += value
        prev = torch.tensor(gold, device=src.device)
    return total
