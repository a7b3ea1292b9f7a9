"""Batches: length-bucketed, padded, deterministic given (seed, epoch).

Examples are shuffled, cut into pools of many batches, sorted by length inside each pool, cut into
batches (a fixed number of sentences, or a token budget that counts padding), and the batch order is
shuffled. Sorting inside pools keeps padding low; shuffling pools and batches keeps training noisy.
An epoch's batch list depends only on (seed, epoch), so resume can skip to any position and each
of several ranks can take its own share.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from transduce.data.vocabulary import BOS_ID, EOS_ID, PAD_ID


@dataclass
class Batch:
    """A padded batch. Target input starts with ``<s>``; target output ends with ``</s>``."""

    src: torch.Tensor  # (batch, src_len) token ids, right-padded with PAD_ID
    src_lens: torch.Tensor  # (batch,) int64, on CPU (pack_padded_sequence wants it there)
    tgt_in: torch.Tensor | None = None  # (batch, tgt_len + 1): <s> y1 ... yn
    tgt_out: torch.Tensor | None = None  # (batch, tgt_len + 1): y1 ... yn </s>
    n_tgt_tokens: int = 0  # non-pad target tokens including </s>
    n_pad: int = 0  # pad positions in tgt_out

    def to(self, device: torch.device) -> "Batch":
        move = (lambda t: None if t is None else t.to(device, non_blocking=True))
        return Batch(move(self.src), self.src_lens, move(self.tgt_in), move(self.tgt_out),
                     self.n_tgt_tokens, self.n_pad)


def pad(seqs: list[np.ndarray] | list[list[int]], prefix: int | None = None,
        suffix: int | None = None) -> np.ndarray:
    """Right-pad integer sequences into a (len(seqs), max_len) int64 array."""
    extra = (prefix is not None) + (suffix is not None)
    width = max(len(s) for s in seqs) + extra
    out = np.full((len(seqs), width), PAD_ID, dtype=np.int64)
    for i, s in enumerate(seqs):
        start = 0
        if prefix is not None:
            out[i, 0] = prefix
            start = 1
        out[i, start:start + len(s)] = s
        if suffix is not None:
            out[i, start + len(s)] = suffix
    return out


def make_batch(src: list, tgt: list | None = None) -> Batch:
    src_arr = pad(src)
    src_lens = torch.tensor([len(s) for s in src], dtype=torch.int64)
    if tgt is None:
        return Batch(torch.from_numpy(src_arr), src_lens)
    tgt_in = pad(tgt, prefix=BOS_ID)
    tgt_out = pad(tgt, suffix=EOS_ID)
    n_tok = sum(len(t) for t in tgt) + len(tgt)
    return Batch(torch.from_numpy(src_arr), src_lens, torch.from_numpy(tgt_in),
                 torch.from_numpy(tgt_out), n_tok, tgt_out.size - n_tok)


def batch_indices(src_lens: np.ndarray, tgt_lens: np.ndarray, *, batch_size: int = 64,
                  batch_tokens: int | None = None, seed: int = 1, epoch: int = 0,
                  shuffle: bool = True, pool_batches: int = 100) -> list[np.ndarray]:
    """Example indices of each batch of one epoch, in training order.

    With ``batch_tokens`` a batch holds as many sentences as fit ``n * max(src_len, tgt_len + 1)
    <= batch_tokens`` (padding included); a single longer example gets a batch of its own.
    """
    n = len(src_lens)
    lengths = np.maximum(src_lens, tgt_lens + 1)
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n) if shuffle else np.arange(n)
    if batch_tokens:
        mean = max(1, int(lengths.mean()))
        pool = max(1, pool_batches * max(1, batch_tokens // mean))
    else:
        pool = pool_batches * batch_size
    batches: list[np.ndarray] = []
    for start in range(0, n, pool):
        chunk = order[start:start + pool]
        # stable sort by (src_len, tgt_len) so equal lengths keep their shuffled order
        chunk = chunk[np.lexsort((tgt_lens[chunk], src_lens[chunk]))]
        if batch_tokens:
            batches.extend(_cut_by_tokens(chunk, lengths[chunk], batch_tokens))
        else:
            batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    if shuffle:
        perm = rng.permutation(len(batches))
        batches = [batches[i] for i in perm]
    return batches


def _cut_by_tokens(idx: np.ndarray, lens: np.ndarray, budget: int) -> list[np.ndarray]:
    out, start, longest = [], 0, 0
    for i, length in enumerate(lens):
        longest_if_added = max(longest, int(length))
        if i > start and longest_if_added * (i - start + 1) > budget:
            out.append(idx[start:i])
            start, longest = i, int(length)
        else:
            longest = longest_if_added
    if start < len(idx):
        out.append(idx[start:])
    return out
