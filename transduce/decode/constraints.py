"""Lexically constrained beam search: target phrases every output must contain (terminology),
with the dynamic beam allocation of Post & Vilar (2018).

Each hypothesis carries which phrases it has produced and how far it is into the one it is
producing (a phrase counts only when its tokens come in a row); its *bank* is the number of
constraint tokens it has met. At each step the candidates (the best extensions overall, the
best extension of each hypothesis, and every extension that advances a constraint) are grouped
by the bank they reach, and the k kept alive are taken from the banks in turn, highest first, so
hypotheses that have met more constraints are not crowded out by better-scoring ones that have
met fewer. A hypothesis may end only when it has met every phrase, and no hypothesis takes a
token after which its remaining phrases no longer fit in its maximum length: every finished
hypothesis holds every phrase.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from transduce.data.vocabulary import EOS_ID


@dataclass(frozen=True)
class Progress:
    """One hypothesis's progress through its sentence's phrases."""

    done: frozenset[int] = field(default_factory=frozenset)  # the phrases produced
    phrase: int = -1  # the phrase being produced (-1: none)
    pos: int = 0  # how many of its tokens are produced


def advance(p: Progress, phrases: list[list[int]], tok: int) -> Progress:
    """The progress after ``tok``: the next token of the phrase in progress continues it; any
    other token drops that phrase's progress, and may start a phrase not yet produced."""
    if p.phrase >= 0 and phrases[p.phrase][p.pos] == tok:
        if p.pos + 1 == len(phrases[p.phrase]):
            return Progress(p.done | {p.phrase})
        return Progress(p.done, p.phrase, p.pos + 1)
    for j, phrase in enumerate(phrases):
        if j not in p.done and phrase[0] == tok:
            return Progress(p.done | {j}) if len(phrase) == 1 else Progress(p.done, j, 1)
    return Progress(p.done)


def met(p: Progress, phrases: list[list[int]]) -> int:
    """Constraint tokens met: those of the phrases produced and of the one in progress."""
    return sum(len(phrases[j]) for j in p.done) + p.pos


class Constraints:
    """The constraint side of :func:`~transduce.decode.search.beam_search`: the phrases of the
    sentences in the batch and the progress of each hypothesis (rows ``sentence * k + beam``),
    reordered and shrunk with the beam."""

    def __init__(self, phrases: list[list[list[int]]], k: int):
        self.phrases, self.k = phrases, k  # per sentence: its phrases as target ids
        self.totals = [sum(map(len, ps)) for ps in phrases]  # per sentence: constraint tokens
        self.rows = [Progress()] * (len(phrases) * k)

    def moves(self) -> list[tuple[int, dict[int, int]]]:
        """Per row: (constraint tokens met after any token that moves nothing, {token: met
        after it} for the tokens that continue or start a phrase)."""
        out = []
        for row, p in enumerate(self.rows):
            phrases = self.phrases[row // self.k]
            nxt = {phrases[p.phrase][p.pos]} if p.phrase >= 0 else set()
            nxt |= {ph[0] for j, ph in enumerate(phrases) if j not in p.done}
            out.append((met(p, phrases) - p.pos,
                        {t: met(advance(p, phrases, t), phrases) for t in nxt}))
        return out

    def restrict(self, logp: torch.Tensor, t: int, max_lens: list[int],
                 moves: list[tuple[int, dict[int, int]]]) -> None:
        """In place on ``logp`` (rows, vocab) at step ``t``: ``</s>`` only for a hypothesis that
        has met every phrase, and no token after which the phrases left need more tokens than
        the hypothesis may still produce (``max_lens``: per sentence; ``moves``: :meth:`moves`)."""
        blank, keep, no_eos = [], [], []  # rows to set to -inf; (row, token) kept as they were
        for row, (base, mv) in enumerate(moves):
            s = row // self.k
            total = self.totals[s]
            left = max_lens[s] - t - 1  # tokens this hypothesis may produce after this one
            if total - base > left:  # only tokens that advance a phrase still fit
                blank.append(row)
                keep += [(row, tok) for tok, m in mv.items() if total - m <= left]
            elif base + self.rows[row].pos < total:  # not every phrase met: no </s> yet
                no_eos.append(row)
        logp[no_eos, EOS_ID] = float("-inf")
        if blank:
            rows, toks = (list(x) for x in zip(*keep)) if keep else ([], [])
            saved = logp[rows, toks]
            logp[blank] = float("-inf")
            logp[rows, toks] = saved

    def allocate(self, cand: torch.Tensor, top_idx: torch.Tensor, logp: torch.Tensor,
                 moves: list[tuple[int, dict[int, int]]]
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The k hypotheses kept alive per sentence, by dynamic beam allocation: from ``cand``
        (n, k * vocab) extension scores (restricted), ``top_idx`` (n, m) the best of them,
        ``logp`` (n * k, vocab) and ``moves`` (:meth:`moves`); returns (beam, token, score),
        each (n, k)."""
        n, vocab, k = cand.size(0), logp.size(-1), self.k
        best = logp.topk(2, dim=-1).indices.tolist()  # (n * k, 2): the best two per row
        flat: list[list[int]] = []  # per sentence: candidate indices beam * vocab + token
        for s, top in enumerate(top_idx.tolist()):
            mine = set(top)
            for beam in range(k):
                row = s * k + beam
                mine.add(beam * vocab + next(t for t in best[row] if t != EOS_ID))
                mine.update(beam * vocab + tok for tok in moves[row][1])
            flat.append(sorted(mine))
        s_idx = torch.tensor([s for s, f in enumerate(flat) for _ in f], device=cand.device)
        f_idx = torch.tensor([i for f in flat for i in f], device=cand.device)
        scores = iter(cand[s_idx, f_idx].tolist())
        beams, toks, kept = [], [], []
        for s, f in enumerate(flat):
            banks: dict[int, list[tuple[float, int]]] = {}
            for i in f:
                score, (beam, tok) = next(scores), divmod(i, vocab)
                if tok != EOS_ID and score != float("-inf"):
                    base, mv = moves[s * k + beam]
                    banks.setdefault(mv.get(tok, base), []).append((score, i))
            for bank in banks.values():
                bank.sort(reverse=True)
            # round robin: rank 0 of every bank (highest bank first), then rank 1, ...
            order = sorted(((rank, -b), item) for b, bank in banks.items()
                           for rank, item in enumerate(bank))
            chosen = [item for _, item in order[:k]]
            chosen += [(float("-inf"), EOS_ID)] * (k - len(chosen))  # too few: dead slots
            for score, i in chosen:
                beam, tok = divmod(i, vocab)
                beams.append(beam)
                toks.append(tok)
                kept.append(score)
        shape, device = (n, k), cand.device
        return (torch.tensor(beams, device=device).view(shape),
                torch.tensor(toks, device=device).view(shape),
                torch.tensor(kept, device=device, dtype=cand.dtype).view(shape))

    def advance(self, beams: torch.Tensor, toks: torch.Tensor) -> None:
        """The kept hypotheses (``beams``, ``toks``: (n, k) from :meth:`allocate`) become the
        rows."""
        k = self.k
        self.rows = [advance(self.rows[s * k + b], self.phrases[s], t)
                     for s, (bs, ts) in enumerate(zip(beams.tolist(), toks.tolist()))
                     for b, t in zip(bs, ts)]

    def keep(self, sentences: list[int]) -> None:
        """Only these sentences (indices into the current ones) go on."""
        k = self.k
        self.rows = [self.rows[s * k + b] for s in sentences for b in range(k)]
        self.phrases = [self.phrases[s] for s in sentences]
        self.totals = [self.totals[s] for s in sentences]
