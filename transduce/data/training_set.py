"""The training set of a run: its corpora checked and profiled, its tokenizers and vocabularies,
its encoded pairs; for text corpora each one an entry of the training-data cache
(``data/cache.py``), built once and reused, so that a corpus larger than memory is read as a
stream and a rerun reads no text at all:

- ``corpus-<key>`` (key: the training files' paths, sizes and modification times): each corpus's
  pair count and the profile of the pairs (``data/profile.py``, for ``model.copy: auto``).
  Building it reads and checks every line (``corpus.iter_parallel``), then the profile's sample.
- ``codecs-<key>`` (key: the corpus entry, the tokenizer and vocabulary settings
  (:data:`~transduce.data.codec.CODEC_KEYS`), the files given as ``data.spm_model`` /
  ``vocab_file``): the files ``codec.build_codecs`` writes, copied into the model_dir.
- ``pairs-<key>`` (key: the corpus entry, the contents of the vocabularies and SentencePiece
  models in use (built, resumed or a parent's), tokenizer kinds and lowercasing, the length
  limits, ``skip_bad_pairs``, ``copy``): ``binarized.write_pairs``'s files.

The corpora's weights are no part of a key: they apply when the pairs are loaded. The cache
folder is ``data.cache_dir``, by default ``transduce-cache/`` beside the first training corpus.
Image corpora are read into memory (their images are decoded into memory anyway,
``data/images.py``) and not cached.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict
from pathlib import Path

from transduce.config import DataConfig
from transduce.data.batching import ImagePairs
from transduce.data.binarized import BinarizedPairs, write_pairs
from transduce.data.cache import Cache, entry_name, file_ids
from transduce.data.codec import (CODEC_KEYS, SIDES, Codec, build_codecs, copy_codecs,
                                  load_codecs)
from transduce.data.corpus import TrainingText, resolve_pair, training_text
from transduce.data.profile import Profile, measure, pick

log = logging.getLogger("transduce")
CACHE_DIR = "transduce-cache"  # the default cache folder's name, beside the training data


def cache_root(cfg: DataConfig) -> Path:
    """``data.cache_dir``, or :data:`CACHE_DIR` in the folder of the first training corpus."""
    if cfg.cache_dir:
        return Path(cfg.cache_dir)
    return resolve_pair(cfg.corpora()[0].path, cfg.src_lang, cfg.tgt_lang)[0].parent / CACHE_DIR


def _scan(text: TrainingText) -> dict:
    """Read and check every pair: the pairs of each corpus, and the profile of all."""
    counts, nonempty = [], 0
    for part in text.parts:
        n = 0
        for s, t in part.pairs():
            n += 1
            nonempty += bool(s and t)  # lines come stripped
        counts.append(n)
    return {"pairs": counts, "profile": asdict(measure(pick(text.pairs(), nonempty)))}


def _fingerprint(codec: Codec) -> bytes:
    """What fixes the ids of a side: its vocabulary and SentencePiece model, its tokenizer."""
    tok = codec.tokenizer
    spm = tok.sp.serialized_model_proto() if hasattr(tok, "sp") else b""
    return f"{tok.kind} {tok.lowercase}\n".encode() + "\n".join(codec.vocab.itos).encode() + spm


class TrainingSet:
    """``data.train``'s corpora (:meth:`read`), and from them the run's codecs
    (:meth:`codecs`) and encoded pairs (:meth:`pairs`), made by the run's data settings (those
    :meth:`read` had, with what the run decided from the data: ``data.image_size``)."""

    def __init__(self, text: TrainingText, cache: Cache | None = None):
        self.text, self.cache, self.meta = text, cache, {}
        self.sources = file_ids(p for part in text.parts for p in (part.src_path, part.tgt_path))
        self.name = entry_name("corpus", self.sources)

    @classmethod
    def read(cls, cfg: DataConfig) -> "TrainingSet":
        """Image corpora read into memory; text corpora read and checked, or known from the
        cache (the corpus entry)."""
        text = training_text(cfg)
        if cfg.src_type == "image":
            return cls(text)
        train = cls(text, Cache(cache_root(cfg)))
        _, train.meta = train.cache.entry(train.name, train.sources, "pair counts, profile",
                                          lambda _: _scan(text))
        return train

    @property
    def profile(self) -> Profile | None:
        """The profile of a text corpus's pairs (measured once, by :meth:`read`)."""
        return Profile(**self.meta["profile"]) if "profile" in self.meta else None

    def codecs(self, cfg: DataConfig, out: Path) -> tuple[Codec, Codec]:
        """Tokenizers and vocabularies built from the training text, saved in ``out``."""
        if self.cache is None:
            return build_codecs(cfg, out, self.text.src, self.text.tgt)
        given = file_ids(Path(p) for key in ("spm_model", "vocab_file") for side in SIDES
                         if (p := cfg.given(key, side)))
        name = entry_name("codecs", self.name, given,
                          cfg.model_dump(mode="json", include=set(CODEC_KEYS)))

        def build(folder: Path) -> dict:
            build_codecs(cfg, folder, self.text.src, self.text.tgt)
            return {}
        folder, _ = self.cache.entry(name, self.sources + given, "vocabularies", build)
        copy_codecs(folder, out)
        return load_codecs(cfg, out)

    def pairs(self, d: DataConfig, src: Codec, tgt: Codec,
              copy: bool = False) -> BinarizedPairs | ImagePairs:
        """The encoded training pairs (with ``copy``, the extended source ids too), of several
        weighted corpora with each pair's weight; their counts and shares logged."""
        parts = self.text.parts
        if self.cache is None:
            return ImagePairs.from_lists(self.text.src, self.text.tgt, tgt, d, parts[0].src_path,
                                         train=True)
        settings = {"max_src_len": d.max_src_len, "max_tgt_len": d.max_tgt_len,
                    "skip_bad_pairs": d.skip_bad_pairs, "copy": copy}
        codecs = hashlib.sha256(_fingerprint(src) + b"\0" + _fingerprint(tgt)).hexdigest()
        folder, meta = self.cache.entry(
            entry_name("pairs", self.name, codecs, settings), self.sources, "encoded pairs",
            lambda out: write_pairs(parts, src, tgt, d, copy, out))
        weighted = len(parts) > 1 or parts[0].weight != 1
        pairs = BinarizedPairs(folder, meta, [p.weight for p in parts] if weighted else ())
        start = 0
        for part, n in zip(parts, meta["pairs"]):
            log.info("training data: %d pairs from %s (mean %.1f source / %.1f target tokens)",
                     n, part.src_path, pairs.src_lens[start:start + n].mean(),
                     pairs.tgt_lens[start:start + n].mean())
            start += n
        if weighted:
            mass = [p.weight * n for p, n in zip(parts, meta["pairs"])]
            log.info("training corpora, share of an epoch: %s", "; ".join(
                f"{p.src_path} {n} pairs x {p.weight:g} = {100 * m / sum(mass):.1f} %"
                for p, n, m in zip(parts, meta["pairs"], mass)))
        return pairs
