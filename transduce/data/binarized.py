"""Encoded training pairs on disk: written once as a stream, read a batch at a time.

Two files (in a cache entry, ``data/training_set.py``):

- ``tokens.bin``: for each kept pair one record of token ids, one record after another: the
  source (cut to ``data.max_src_len``), the target and, with copy, the source as extended target
  ids (``data/vocabulary.py``); uint16 when every id can fit (vocabularies up to about 65,000
  types; uint8 up to 255), else int32.
- ``lens.npy``: (2, pairs) the source and target lengths, uint8 for the default limits of 100
  (uint16, int32 for larger ones).
- ``offsets.npy``: (pairs + 1,) where each record starts, in ids: uint32 (int64 past 2^32 ids).

The lengths and offsets are the index, and the only part held in memory: 2 + 4 bytes a pair
with the default limits, 60 MB for 10 M pairs. Batching needs nothing else
(``batching.batch_indices`` reads ``src_lens``, ``tgt_lens`` and ``weights``);
:meth:`BinarizedPairs.batch` reads its records with ``pread``.

Why ``pread`` and not a memory map: the pages of a mapped file that a process touches count in
its resident set, and batches touch pages all over the file (fault-around maps up to 16 cached
pages for each), so the resident set of a run on a memory map grows with the corpus and the
updates, while ``pread`` copies the few bytes it needs and the page cache stays the kernel's
(shared by the ranks, dropped under memory pressure).
"""
from __future__ import annotations

import os
from itertools import chain, islice
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from transduce.config import DataConfig
from transduce.data.batching import Batch, make_batch
from transduce.data.codec import Codec, encode_pairs
from transduce.data.corpus import Part, PairFilter

TOKENS, LENS, OFFSETS = "tokens.bin", "lens.npy", "offsets.npy"
CHUNK_PAIRS = 20_000  # pairs tokenized and written at a time


def uint_for(top: int) -> np.dtype:
    """The smallest of uint8, uint16 and int32 that holds every value up to ``top``."""
    return np.dtype(next(t for t in (np.uint8, np.uint16) if top <= np.iinfo(t).max)
                    if top <= np.iinfo(np.uint16).max else np.int32)


def _chunks(pairs: Iterator[tuple[str, str]], n: int) -> Iterator[list[tuple[str, str]]]:
    while chunk := list(islice(pairs, n)):
        yield chunk


def write_pairs(parts: list[Part], src: Codec, tgt: Codec, cfg: DataConfig, copy: bool,
                out: Path) -> dict:
    """Tokenize, filter (``corpus.PairFilter``: per corpus, its messages naming its lines), cut
    and encode (``codec.encode_pairs``) the pairs of ``parts`` into ``out``'s files, a chunk of
    :data:`CHUNK_PAIRS` at a time. Returns the meta :class:`BinarizedPairs` reads: kept pairs
    per corpus, ids, the ids' dtype, ``copy``."""
    cut = cfg.max_src_len
    dtype = uint_for(max(len(src.vocab), len(tgt.vocab) + (cut if copy else 0)))
    len_dtype = uint_for(max(cfg.max_src_len, cfg.max_tgt_len + 1))  # tgt_lens + 1 must fit
    kept, lens, ids = [], [], 0
    with open(out / TOKENS, "wb") as f:
        for part in parts:
            check = PairFilter(cfg.max_src_len, cfg.max_tgt_len, part.src_path,
                               cfg.skip_bad_pairs)
            total = 0
            for chunk in _chunks(part.pairs(), CHUNK_PAIRS):
                s_tok = [src.tokenize(s) for s, _ in chunk]
                t_tok = [tgt.tokenize(t) for _, t in chunk]
                keep = [j for j in range(len(chunk)) if check.keep(total + j, s_tok[j], t_tok[j])]
                total += len(chunk)
                s_ids, t_ids, ext, _ = encode_pairs([s_tok[j][:cut] for j in keep],
                                                    [t_tok[j] for j in keep], src.vocab,
                                                    tgt.vocab, copy)
                sides = (s_ids, t_ids, ext) if copy else (s_ids, t_ids)
                flat = np.fromiter(chain.from_iterable(chain.from_iterable(zip(*sides))), dtype)
                flat.tofile(f)
                ids += flat.size
                lens.append(np.array([list(map(len, s_ids)), list(map(len, t_ids))], len_dtype))
            kept.append(check.finish(total).kept)
    lens = np.concatenate(lens, axis=1)
    np.save(out / LENS, lens)
    size = np.add(lens[0], lens[1], dtype=np.int64) + (lens[0] if copy else 0)  # per record
    offsets = np.zeros(len(size) + 1, np.uint32 if ids < 2 ** 32 else np.int64)
    np.cumsum(size, out=offsets[1:], dtype=offsets.dtype)
    np.save(out / OFFSETS, offsets)
    return {"pairs": kept, "ids": ids, "dtype": dtype.str, "copy": copy}


class _Side:
    """One side of :class:`BinarizedPairs` as a sequence: ``side[i]`` is pair i's ids."""

    def __init__(self, pairs: "BinarizedPairs", which: int):
        self.pairs, self.which = pairs, which

    def __len__(self) -> int:
        return len(self.pairs.src_lens)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.pairs.split(int(i), self.pairs.record(int(i)))[self.which]


class BinarizedPairs:
    """The training pairs of a :func:`write_pairs` folder, as :class:`~transduce.data.batching.
    Pairs` has them: ``src_lens``/``tgt_lens`` ((pairs,) uint16 or int32, in memory), ``weights``
    ((pairs,) float64 with several weighted corpora, else None), ``src``/``tgt``/``ext`` (pair i's
    ids: ``src[i]``; ``ext`` None without copy) and :meth:`batch`."""

    def __init__(self, folder: Path, meta: dict, weights: Iterable[float] = ()):
        lens = np.load(folder / LENS)
        self.src_lens, self.tgt_lens = lens[0], lens[1]
        self.offsets = np.load(folder / OFFSETS)
        self.dtype, copy = np.dtype(meta["dtype"]), meta["copy"]
        self._file = open(folder / TOKENS, "rb")  # closed with this object
        weights = list(weights)
        self.weights = None if not weights else np.concatenate(
            [np.full(n, float(w)) for n, w in zip(meta["pairs"], weights)])
        self.src, self.tgt = _Side(self, 0), _Side(self, 1)
        self.ext = _Side(self, 2) if copy else None

    def record(self, i: int) -> np.ndarray:
        """Pair ``i``'s record: its source, target (and extended source) ids, one read."""
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        raw = os.pread(self._file.fileno(), (end - start) * self.dtype.itemsize,
                       start * self.dtype.itemsize)
        return np.frombuffer(raw, self.dtype)

    def split(self, i: int, record: np.ndarray) -> list[np.ndarray]:
        """[source, target(, extended source)] of pair ``i``'s ``record``."""
        s, t = int(self.src_lens[i]), int(self.tgt_lens[i])
        return [record[:s], record[s:s + t], record[s + t:]]

    def batch(self, idx: np.ndarray) -> Batch:
        sides = [self.split(int(i), self.record(int(i))) for i in idx]
        return make_batch([r[0] for r in sides], [r[1] for r in sides],
                          [r[2] for r in sides] if self.ext is not None else None)
