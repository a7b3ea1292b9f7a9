"""Shared helpers for the example data-preparation scripts (``examples/*/prepare.py``).

Every example turns some installable source into a list of :class:`Pair` records and then calls
:func:`build`, which deduplicates, splits deterministically without leakage, writes
``<out>/{train,dev,test}.<lang>`` (one segment per line, UTF-8) and prints corpus statistics.

The split rule (:func:`split_pairs`):

* exact duplicate pairs are kept once;
* pairs are ordered by a seeded SHA-256 hash of their ``key`` (a verse reference, a man page
  name, ...), so the split depends only on the keys and the seed, not on file order;
* walking that order, a pair may go to test (then dev) only if its source *and* its target occur
  exactly once in the whole corpus; every other pair goes to train.  Hence no source sentence
  and no target sentence of dev/test appears in any other split (so neither does any pair).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "dev", "test")
WORD_RE = re.compile(r"\w+(?:['’]\w+)*")  # words for vocabulary counts: punctuation split off


@dataclass(frozen=True)
class Pair:
    """One parallel example: ``key`` identifies it for the split hash (stable across rebuilds)."""

    key: str
    src: str
    tgt: str


def normalize_space(text: str) -> str:
    """Drop control/format characters, collapse every run of whitespace (line breaks included)
    into one space and strip the ends, so that a segment always fits on one line."""
    kept = []
    for ch in text:
        if ch.isspace():
            kept.append(" ")
        elif unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co"):
            kept.append(ch)
    return " ".join("".join(kept).split())


def truncate_words(text: str, max_words: int) -> str:
    """The first ``max_words`` whitespace-separated words of ``text``."""
    return " ".join(text.split()[:max_words])


def dedup(pairs: Iterable[Pair]) -> list[Pair]:
    """Drop pairs with an empty side and exact (source, target) repeats; the first one is kept."""
    seen: set[tuple[str, str]] = set()
    out = []
    for p in pairs:
        if not p.src or not p.tgt or (p.src, p.tgt) in seen:
            continue
        seen.add((p.src, p.tgt))
        out.append(p)
    return out


def split_hash(key: str, seed: int) -> str:
    """Seeded, platform-independent hash that orders pairs for the split."""
    return hashlib.sha256(f"{seed}\t{key}".encode()).hexdigest()


def held_out_size(n_pairs: int, fraction: float, cap: int | None = None) -> int:
    """Pairs per held-out split: ``fraction`` of the corpus, at most ``cap``."""
    n = int(round(n_pairs * fraction))
    return n if cap is None else min(n, cap)


def split_pairs(pairs: Sequence[Pair], n_dev: int, n_test: int, seed: int = 1) -> dict[str, list[Pair]]:
    """Split deduplicated ``pairs`` into train/dev/test (see the module docstring).

    dev and test get exactly ``n_dev``/``n_test`` pairs when enough pairs have a unique source and
    a unique target, fewer otherwise.  Each split keeps the input order of its pairs.
    """
    src_count = Counter(p.src for p in pairs)
    tgt_count = Counter(p.tgt for p in pairs)
    order = sorted(range(len(pairs)), key=lambda i: (split_hash(pairs[i].key, seed), i))
    where = ["train"] * len(pairs)
    wanted = {"test": n_test, "dev": n_dev}
    for i in order:
        target = "test" if wanted["test"] > 0 else "dev" if wanted["dev"] > 0 else None
        if target is None:
            break
        p = pairs[i]
        if src_count[p.src] == 1 and tgt_count[p.tgt] == 1:
            where[i] = target
            wanted[target] -= 1
    return {name: [p for p, w in zip(pairs, where, strict=True) if w == name] for name in SPLITS}


def split_files(out_dir: Path, src_lang: str, tgt_lang: str) -> list[Path]:
    """The six files a prepared corpus consists of."""
    return [out_dir / f"{s}.{lang}" for s in SPLITS for lang in (src_lang, tgt_lang)]


def write_splits(splits: dict[str, list[Pair]], out_dir: Path, src_lang: str, tgt_lang: str) -> None:
    """Write ``<out_dir>/<split>.<lang>``, one segment per line, atomically per file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        for lang, side in ((src_lang, "src"), (tgt_lang, "tgt")):
            path = out_dir / f"{name}.{lang}"
            tmp = path.with_name(path.name + ".tmp")
            lines = [getattr(p, side) for p in splits[name]]
            assert all("\n" not in ln and "\r" not in ln for ln in lines)
            tmp.write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")
            tmp.replace(path)


def read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 segment file (split on ``\\n`` only, as the files are written)."""
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def corpus_stats(out_dir: Path, src_lang: str, tgt_lang: str) -> str:
    """A table per split: pairs, mean source/target length in whitespace-separated words, and
    vocabulary size (distinct case-sensitive words, punctuation split off, see ``WORD_RE``)."""
    header = (f"{'split':<6} {'pairs':>7} {'src words':>10} {'tgt words':>10} "
              f"{'src vocab':>10} {'tgt vocab':>10}")
    rows = [header, "-" * len(header)]
    total = {"pairs": 0, "src": 0, "tgt": 0}
    vocab_all: dict[str, set[str]] = {"src": set(), "tgt": set()}
    for name in SPLITS:
        lines = {"src": read_lines(out_dir / f"{name}.{src_lang}"),
                 "tgt": read_lines(out_dir / f"{name}.{tgt_lang}")}
        n = len(lines["src"])
        assert n == len(lines["tgt"]), f"{name}: {n} source vs {len(lines['tgt'])} target lines"
        words, vocab = {}, {}
        for side in ("src", "tgt"):
            words[side] = sum(len(line.split()) for line in lines[side])
            vocab[side] = {w for line in lines[side] for w in WORD_RE.findall(line)}
            vocab_all[side] |= vocab[side]
            total[side] += words[side]
        total["pairs"] += n
        rows.append(f"{name:<6} {n:>7} {words['src'] / max(n, 1):>10.1f} {words['tgt'] / max(n, 1):>10.1f} "
                    f"{len(vocab['src']):>10} {len(vocab['tgt']):>10}")
    n = max(total["pairs"], 1)
    rows.append(f"{'all':<6} {total['pairs']:>7} {total['src'] / n:>10.1f} {total['tgt'] / n:>10.1f} "
                f"{len(vocab_all['src']):>10} {len(vocab_all['tgt']):>10}")
    return "\n".join(rows)


def cli(description: str, extra: Callable[[argparse.ArgumentParser], object] | None = None
        ) -> argparse.Namespace:
    """The options every ``prepare.py`` takes (``extra`` adds a script's own)."""
    parser = argparse.ArgumentParser(description=description)
    if extra:
        extra(parser)
    parser.add_argument("--out", type=Path, required=True, help="output folder (examples/<task>/data)")
    parser.add_argument("--force", action="store_true", help="rebuild even if the files exist")
    parser.add_argument("--seed", type=int, default=1, help="seed of the split hash")
    return parser.parse_args()


def build(collect: Callable[[], list[Pair]], out_dir: Path, src_lang: str, tgt_lang: str, *,
          seed: int, force: bool, dev_test: Callable[[int], tuple[int, int]]) -> None:
    """Collect pairs, dedup, split, write and print statistics — or, when the files already
    exist and ``force`` is false, only print the statistics (so ``prepare.sh`` is idempotent).

    ``dev_test(n_pairs)`` gives the dev and test sizes for a deduplicated corpus of n_pairs.
    """
    shown = os.path.relpath(out_dir)
    if force or not all(p.is_file() for p in split_files(out_dir, src_lang, tgt_lang)):
        pairs = dedup(collect())
        n_dev, n_test = dev_test(len(pairs))
        splits = split_pairs(pairs, n_dev, n_test, seed)
        write_splits(splits, out_dir, src_lang, tgt_lang)
        print(f"wrote {len(pairs)} unique pairs to {shown}/")
    else:
        print(f"{shown}/ is already prepared (use --force to rebuild)")
    print(corpus_stats(out_dir, src_lang, tgt_lang))
