"""Batches: length-bucketed, padded, deterministic given (seed, epoch).

Examples are shuffled, cut into pools of many batches, sorted by length inside each pool, cut into
batches (a fixed number of sentences, or a token budget that counts padding), and the batch order is
shuffled. Sorting inside pools keeps padding low; shuffling pools and batches keeps training noisy.
An epoch's batch list depends only on (seed, epoch), so resume can skip to any position and each
of several ranks can take its own share.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from transduce.config import DataConfig
from transduce.data.codec import Codec
from transduce.data.corpus import filter_pairs
from transduce.data.images import Images, cells
from transduce.data.vocabulary import BOS_ID, EOS_ID, PAD_ID

log = logging.getLogger("transduce")


@dataclass
class Batch:
    """A padded batch. Target input starts with ``<s>``; target output ends with ``</s>``."""

    src: torch.Tensor  # (batch, src_len) token ids, right-padded with PAD_ID; or images
    src_lens: torch.Tensor  # (batch,) int64, on CPU (pack_padded_sequence wants it there)
    tgt_in: torch.Tensor | None = None  # (batch, tgt_len + 1): <s> y1 ... yn
    tgt_out: torch.Tensor | None = None  # (batch, tgt_len + 1): y1 ... yn </s>
    n_tgt_tokens: int = 0  # non-pad target tokens including </s>
    n_pad: int = 0  # pad positions in tgt_out
    src_ext: torch.Tensor | None = None  # (batch, src_len) source as extended target ids (copy)

    def to(self, device: torch.device) -> "Batch":
        move = (lambda t: None if t is None else t.to(device, non_blocking=True))
        return Batch(move(self.src), self.src_lens, move(self.tgt_in), move(self.tgt_out),
                     self.n_tgt_tokens, self.n_pad, move(self.src_ext))


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


def make_batch(src: list, tgt: list | None = None, src_ext: list | None = None) -> Batch:
    """Pad id sequences into a batch. Copy models also give ``src_ext`` (the source as extended
    target ids); their targets may hold extended ids (the decoder reads them as ``<unk>``)."""
    src_lens = torch.tensor([len(s) for s in src], dtype=torch.int64)
    ext = torch.from_numpy(pad(src_ext)) if src_ext is not None else None
    return _with_targets(torch.from_numpy(pad(src)), src_lens, tgt, ext)


def image_batch(pixels: torch.Tensor, tgt: list | None = None) -> Batch:
    """A batch of images (batch, 3, S, S) and their captions' ids; ``src_lens`` holds each
    image's number of attention cells (``images.cells``)."""
    src_lens = torch.full((len(pixels),), cells(pixels.size(-1)), dtype=torch.int64)
    return _with_targets(pixels, src_lens, tgt)


def _with_targets(src: torch.Tensor, src_lens: torch.Tensor, tgt: list | None,
                  src_ext: torch.Tensor | None = None) -> Batch:
    if tgt is None:
        return Batch(src, src_lens, src_ext=src_ext)
    tgt_in = pad(tgt, prefix=BOS_ID)
    tgt_out = pad(tgt, suffix=EOS_ID)
    n_tok = sum(len(t) for t in tgt) + len(tgt)
    return Batch(src, src_lens, torch.from_numpy(tgt_in), torch.from_numpy(tgt_out), n_tok,
                 tgt_out.size - n_tok, src_ext)


class Pairs:
    """Encoded pairs in memory (the dev set's) as int64 arrays with their lengths; :meth:`batch`
    pads some. ``ext``: with copy, the sources as extended target ids (see
    ``data/vocabulary.py``). The training pairs of a text corpus are read from the cache:
    ``binarized.BinarizedPairs``, with the same attributes."""

    def __init__(self, src: list[list[int]], tgt: list[list[int]],
                 ext: list[list[int]] | None = None):
        arrays = lambda seqs: [np.array(s, dtype=np.int64) for s in seqs]  # noqa: E731
        self.src, self.tgt = arrays(src), arrays(tgt)
        self.ext = arrays(ext) if ext is not None else None
        self.src_lens = np.array([len(s) for s in self.src])
        self.tgt_lens = np.array([len(s) for s in self.tgt])
        self.weights: np.ndarray | None = None  # one corpus

    def batch(self, idx: np.ndarray) -> Batch:
        return make_batch([self.src[i] for i in idx], [self.tgt[i] for i in idx],
                          [self.ext[i] for i in idx] if self.ext is not None else None)


class ImagePairs:
    """The pairs of an image corpus: decoded images (:class:`~transduce.data.images.Images`)
    and encoded captions; :meth:`batch` augments the images when ``train``. ``src_lens``: the
    attention cells of each image, as a text source's length for batching."""

    def __init__(self, images: Images, tgt: list[list[int]], train: bool = False):
        self.images, self.train = images, train
        self.tgt = [np.array(t, dtype=np.int64) for t in tgt]
        self.tgt_lens = np.array([len(t) for t in self.tgt])
        self.src_lens = np.full(len(self.tgt), cells(images.pixels.size(-1)))
        self.weights = None  # one corpus

    @classmethod
    def from_lists(cls, paths: list[str], captions: list[str], tgt: Codec, cfg: DataConfig,
                   list_path: Path, train: bool = False) -> "ImagePairs":
        """Captions tokenized and filtered (empty lines, over-long captions: see
        ``corpus.filter_pairs``; a source's one "token" is its path), the kept images decoded
        (errors name ``list_path`` and the line)."""
        tgt_tok = [tgt.tokenize(c) for c in captions]
        keep, _ = filter_pairs([[p] if p else [] for p in paths], tgt_tok, cfg.max_src_len,
                               cfg.max_tgt_len, list_path, cfg.skip_bad_pairs,
                               "training" if train else "dev")
        images = Images.load([paths[i] for i in keep], cfg.image_size, list_path, lines=keep)
        pairs = cls(images, [tgt.vocab.encode(tgt_tok[i]) for i in keep], train and cfg.augment)
        log.info("%s data: %d images (%d x %d) from %s (mean %.1f caption tokens)",
                 "training" if train else "dev", len(keep), cfg.image_size, cfg.image_size,
                 list_path, pairs.tgt_lens.mean())
        return pairs

    def batch(self, idx: np.ndarray) -> Batch:
        return image_batch(self.images.batch(idx, self.train), [self.tgt[i] for i in idx])


def attention_cost(attention: str, hidden_size: int, embedding_size: int,
                   tgt_vocab_size: int) -> float:
    """Training memory of one source x target attention cell, in units of one target token.

    A target token holds its logits and log-probabilities (2 x vocabulary floats at the peak; the
    trainer's loss reuses their memory for the gradient) and its RNN, attention and output vectors
    (about 12 x hidden + 2 x embedding). A cell of
    the attention grid holds a score, a weight and their gradients (4 floats), or with ``mlp``
    attention a hidden-size tanh activation and its gradient (2 x hidden + 4), with or without
    input feeding (input feeding keeps every step's activations for the backward pass too).
    """
    if attention == "none":
        return 0.0
    per_cell = 2 * hidden_size + 4 if attention == "mlp" else 4
    per_token = 2 * tgt_vocab_size + 12 * hidden_size + 2 * embedding_size
    return per_cell / per_token


def batch_cost(n: int, src_len: int, tgt_len: int, att_cost: float = 0.0) -> float:
    """Cost of ``n`` sentences padded to ``src_len`` source and ``tgt_len`` target positions (the
    target counted with its ``</s>``), in tokens: the padded length or the attention grid in token
    units (:func:`attention_cost`), whichever is larger, times ``n``. Memory is bounded by about
    twice the budget: tokens and grid together."""
    return n * max(src_len, tgt_len, att_cost * src_len * tgt_len)


def batch_indices(src_lens: np.ndarray, tgt_lens: np.ndarray, *, batch_size: int = 64,
                  batch_tokens: int | None = None, seed: int = 1, epoch: int = 0,
                  shuffle: bool = True, pool_batches: int = 100, att_cost: float = 0.0,
                  max_sentences: int | None = None,
                  weights: np.ndarray | None = None) -> list[np.ndarray]:
    """Example indices of each batch of one epoch, in training order.

    With ``batch_tokens`` a batch holds as many sentences as fit ``batch_cost(n, max src_len,
    max tgt_len + 1, att_cost) <= batch_tokens`` (padding and, with ``att_cost``, the source x
    target attention grid included), and at most ``max_sentences``; a single example over the
    budget gets a batch of its own (bound its size with ``data.max_src_len``/``max_tgt_len``).
    Without ``batch_tokens``, batches hold ``batch_size`` sentences. ``weights`` (per example,
    several weighted corpora): an epoch holds example i ``weights[i]`` times in expectation
    (sampled). The result depends only on the lengths, the settings, ``seed`` and ``epoch``.
    """
    n = len(src_lens)  # examples; an epoch holds ``len(order)`` of them
    src_lens, tgt_lens = np.asarray(src_lens), np.asarray(tgt_lens)
    rng = np.random.default_rng([seed, epoch])
    if weights is None:
        order = _permutation(rng, n) if shuffle else np.arange(n, dtype=_index_dtype(n))
    else:  # each example floor(w) times, and once more with probability w - floor(w)
        whole = np.floor(weights)
        order = np.repeat(np.arange(n, dtype=_index_dtype(n)),
                          (whole + (rng.random(n) < weights - whole)).astype(int))
        order = order[_permutation(rng, len(order))] if shuffle else order
    if batch_tokens:
        mean = max(1, int(np.maximum(src_lens, tgt_lens + 1).mean())) if n else 1
        pool = max(1, pool_batches * max(1, batch_tokens // mean))
    else:
        pool = pool_batches * batch_size
    batches: list[np.ndarray] = []
    for start in range(0, len(order), pool):
        chunk = order[start:start + pool]
        # stable sort by (tgt_len, src_len): the decoder's step loop pays for target padding,
        # the packed encoder does not pay for source padding; ties keep their shuffled order.
        # Sorted in place: the batches are views of ``order`` (4 bytes an example in all)
        chunk[:] = chunk[np.lexsort((src_lens[chunk], tgt_lens[chunk]))]
        if batch_tokens:
            batches.extend(_cut_by_cost(chunk, src_lens[chunk], tgt_lens[chunk] + 1, batch_tokens,
                                        att_cost, max_sentences or len(chunk)))
        else:
            batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    if shuffle:
        perm = _permutation(rng, len(batches))
        batches = [batches[i] for i in perm]
    return batches


def _index_dtype(n: int) -> type:
    return np.int32 if n < 2 ** 31 else np.int64


def _permutation(rng: np.random.Generator, n: int) -> np.ndarray:
    """``rng.permutation(n)``, the same draws, as int32 where it fits (half the memory of an
    epoch's order on a large corpus)."""
    out = np.arange(n, dtype=_index_dtype(n))
    rng.shuffle(out)
    return out


def _cut_by_cost(idx: np.ndarray, src: np.ndarray, tgt: np.ndarray, budget: int,
                 att_cost: float, max_n: int) -> list[np.ndarray]:
    out, start, s_max, t_max = [], 0, 0, 0
    for i in range(len(idx)):
        s, t = max(s_max, int(src[i])), max(t_max, int(tgt[i]))
        n = i - start + 1
        if n > 1 and (n > max_n or batch_cost(n, s, t, att_cost) > budget):
            out.append(idx[start:i])
            start, s_max, t_max = i, int(src[i]), int(tgt[i])
        else:
            s_max, t_max = s, t
    if start < len(idx):
        out.append(idx[start:])
    return out


def warn_oversized(src_lens: np.ndarray, tgt_lens: np.ndarray, batch_tokens: int,
                   att_cost: float, limits: str) -> None:
    """Pairs that exceed the token budget alone are trained one per batch: say so, once.
    ``limits`` names the settings that bound a pair's length, for the advice."""
    cost = np.maximum(np.maximum(src_lens, tgt_lens + 1), att_cost * src_lens * (tgt_lens + 1))
    over = int((cost > batch_tokens).sum())
    if over:
        log.warning("%d training pairs exceed training.batch_tokens=%d on their own (the "
                    "largest costs %d tokens, attention included); each gets a batch of its "
                    "own. Lower %s to keep memory within the budget", over, batch_tokens,
                    int(cost.max()), limits)
