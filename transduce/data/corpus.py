"""Reading and validating parallel text.

A corpus is two UTF-8 files with one segment per line, line i of one aligned with line i of the
other. Every problem is reported with the file and line and what to do about it. Files are read
in chunks (:func:`iter_lines`), so a training corpus is validated, counted and encoded as a stream
and never held in memory whole (``data/cache.py``); dev and test sets are read into lists.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import chain, zip_longest
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from transduce.errors import TransduceError

if TYPE_CHECKING:  # the command line reads files with this module: pydantic stays unloaded
    from transduce.config import DataConfig

log = logging.getLogger("transduce")
CHUNK_BYTES = 1 << 20  # bytes read at a time: a file's lines are validated a chunk at a time
UTF8_FIX = "convert the file to UTF-8, e.g. with iconv"


def iter_lines(path: str | Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[str]:
    """The lines of a UTF-8 text file, without line endings or surrounding whitespace, read
    ``chunk_bytes`` at a time (the checks of :func:`decode_lines`). A missing file is an error
    at once, a bad line when the reading reaches it."""
    path = Path(path)
    if not path.exists():
        raise TransduceError(f"{path}: file not found; check the path")
    if not path.is_file():
        raise TransduceError(f"{path}: not a regular file")

    def chunks() -> Iterator[bytes]:
        with open(path, "rb") as f:
            while chunk := f.read(chunk_bytes):
                yield chunk
    return decode_lines(chunks(), str(path), UTF8_FIX)


def read_lines(path: str | Path) -> list[str]:
    """All lines of a UTF-8 text file, without line endings or surrounding whitespace."""
    return list(iter_lines(path))


def split_lines(raw: bytes, name: str, fix: str) -> list[str]:
    """:func:`decode_lines` of bytes in memory (standard input)."""
    return list(decode_lines([raw], name, fix))


def decode_lines(chunks: Iterable[bytes], name: str, fix: str) -> Iterator[str]:
    """Decode UTF-8 bytes, given in chunks, into stripped lines; ``name`` and ``fix`` (how to
    convert to UTF-8) make the error messages, which give the line and the byte in the whole
    input.

    Only ``\\n`` ends a line (``\\r\\n`` too: the ``\\r`` is stripped). Refused: invalid UTF-8;
    a NUL byte (binary data, or UTF-16/32 text); CR-only line endings (no ``\\n`` at all but a
    ``\\r``), which would read as one huge line. A byte-order mark (U+FEFF) at the start is
    dropped; inside the text (files joined with ``cat``) each one is removed too, with a warning
    (once the input is read) saying how many: it is invisible and never part of a word.

    The input is decoded a block of whole lines at a time (a chunk up to its last ``\\n``); the
    first problem of a block is reported in the order above."""
    line, offset = 1, 0  # the line and byte where the next block starts
    pending: list[bytes] = []  # a line begun in earlier chunks
    boms, first_bom = 0, 0
    for chunk in chain(chunks, [None]):
        if chunk is not None:
            cut = chunk.rfind(b"\n") + 1
            if not cut:
                pending.append(chunk)
                continue
            block, pending = b"".join([*pending, chunk[:cut]]), [chunk[cut:]]
        else:
            block = b"".join(pending)  # the rest: a last line without \n (or nothing)
            if not block:
                break
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as e:
            at = line + block.count(b"\n", 0, e.start)
            raise TransduceError(f"{name}:{at}: invalid UTF-8 ({e.reason} at byte "
                                 f"{offset + e.start}); {fix}") from None
        nul = block.find(b"\0")
        if nul >= 0:
            at = line + block.count(b"\n", 0, nul)
            raise TransduceError(f"{name}:{at}: NUL byte at byte {offset + nul}: this is binary "
                                 f"data or UTF-16/UTF-32 text, not UTF-8 text; {fix}")
        if chunk is None and line == 1 and "\r" in text:  # no \n in the whole input
            raise TransduceError(f"{name}: the lines end in CR only (old Mac line endings: "
                                 f"{text.count(chr(13))} CR, no LF), so it would read as one "
                                 "line; convert them to LF, e.g. with tr '\\r' '\\n' or mac2unix")
        if offset == 0 and text.startswith("\ufeff"):
            text = text[1:]
        if "\ufeff" in text:
            first_bom = first_bom or line + text.count("\n", 0, text.index("\ufeff"))
            boms += text.count("\ufeff")
            text = text.replace("\ufeff", "")
        lines = text.split("\n")
        if chunk is not None or not text:
            lines.pop()  # the "" after the block's last \n (or the input ends with \n)
        yield from (ln.strip() for ln in lines)
        line += len(lines)
        offset += len(block)
    if boms:
        log.warning("%s:%d: removed %d byte-order mark(s) (U+FEFF) inside the text (files "
                    "joined with cat?)", name, first_bom, boms)


def resolve_pair(prefix: str, src_lang: str, tgt_lang: str) -> tuple[Path, Path]:
    """``data/train`` + ``es``/``en`` -> ``data/train.es``, ``data/train.en``."""
    return Path(f"{prefix}.{src_lang}"), Path(f"{prefix}.{tgt_lang}")


def iter_parallel(src_path: str | Path, tgt_path: str | Path,
                  key: str | None = None) -> Iterator[tuple[str, str]]:
    """The line pairs of two aligned files, read as a stream; their line counts must match (an
    error once the shorter one ends) and they must not be empty.

    ``key`` names the config key the paths came from (``data.train``), for the messages.
    """
    if key:
        check_prefix(src_path, tgt_path, key)
    return _aligned(iter_lines(src_path), iter_lines(tgt_path), src_path, tgt_path)


def check_prefix(src_path: str | Path, tgt_path: str | Path, key: str) -> None:
    """Both files of config key ``key`` (a path prefix) must exist: an error saying so."""
    for path in (src_path, tgt_path):
        if not Path(path).exists():
            raise TransduceError(f"{path}: file not found; config key '{key}' is a path prefix: "
                                 f"'{Path(src_path).with_suffix('')}' means {src_path} and "
                                 f"{tgt_path}. Fix {key}, data.src_lang or data.tgt_lang")


def _aligned(src: Iterator[str], tgt: Iterator[str], src_path: str | Path,
             tgt_path: str | Path) -> Iterator[tuple[str, str]]:
    n = 0
    pairs = zip_longest(src, tgt)
    for s, t in pairs:
        if s is None or t is None:
            rest = 1 + sum(1 for _ in pairs)
            n_src, n_tgt = (n + rest, n) if t is None else (n, n + rest)
            short = src_path if n_src < n_tgt else tgt_path
            raise TransduceError(
                f"{short}:{n + 1}: line-count mismatch: {src_path} has {n_src} lines, "
                f"{tgt_path} has {n_tgt}; each source line needs exactly one target line")
        n += 1
        yield s, t
    if not n:
        raise TransduceError(f"{src_path}: the file is empty; a corpus needs at least one pair "
                             "of lines (source line i translates to target line i)")


def read_parallel(src_path: str | Path, tgt_path: str | Path,
                  key: str | None = None) -> tuple[list[str], list[str]]:
    """Read two aligned files into lists (:func:`iter_parallel`'s checks)."""
    src, tgt = zip(*iter_parallel(src_path, tgt_path, key))
    return list(src), list(tgt)


def relative_to(lines: list[str], list_path: str | Path) -> list[str]:
    """Image paths of a list file, each relative to the list file's folder (absolute ones stay);
    empty lines stay empty."""
    base = Path(list_path).parent
    return [str(base / line) if line else "" for line in lines]


@dataclass(frozen=True)
class Part:
    """One training corpus of ``data.train``."""
    src_path: Path  # its source file (messages name it, with the line)
    tgt_path: Path
    weight: float  # an epoch holds weight x its pairs (data.train's weights)

    def pairs(self) -> Iterator[tuple[str, str]]:
        return iter_parallel(self.src_path, self.tgt_path, key="data.train")


class Lines:
    """Lines that can be read more than once: each iteration calls ``read`` again (a pass over
    files, or over lists)."""

    def __init__(self, read: Callable[[], Iterator[str]]):
        self.read = read

    def __iter__(self) -> Iterator[str]:
        return self.read()


@dataclass
class TrainingText:
    """The training corpora of ``data.train``, one after another. ``src``/``tgt``: each side's
    lines, re-readable (:class:`Lines` over the files: a text corpus is never held in memory
    whole; lists for an image corpus, whose sources are image paths relative to here)."""
    parts: list[Part]
    src: Iterable[str]
    tgt: Iterable[str]

    def pairs(self) -> Iterator[tuple[str, str]]:
        """All pairs, read again (with :func:`iter_parallel`'s checks)."""
        return chain.from_iterable(part.pairs() for part in self.parts)


def training_text(cfg: DataConfig) -> TrainingText:
    """``data.train``'s corpora: streamed from their files (text), or read into lists with the
    image paths resolved (``data.src_type: image``: one list file)."""
    if not cfg.train:
        raise TransduceError("config key 'data.train' is not set; give the training file "
                             "prefix (data/train for data/train.<src_lang>, .<tgt_lang>)")
    parts = [Part(*resolve_pair(c.path, cfg.src_lang, cfg.tgt_lang), c.weight)
             for c in cfg.corpora()]
    if cfg.src_type == "image":
        src, tgt = read_parallel(parts[0].src_path, parts[0].tgt_path, key="data.train")
        return TrainingText(parts, relative_to(src, parts[0].src_path), tgt)
    for p in parts:
        check_prefix(p.src_path, p.tgt_path, "data.train")

    def side(paths: list[Path]) -> Lines:
        return Lines(lambda: chain.from_iterable(map(iter_lines, paths)))
    return TrainingText(parts, side([p.src_path for p in parts]),
                        side([p.tgt_path for p in parts]))


def read_dev(cfg: DataConfig) -> tuple[list[str], list[str]] | None:
    """The dev pairs (None without ``data.dev``; image paths resolved); ``data.test`` is read
    too, so that a typo does not wait for hours of training."""
    dev_pair = resolve_pair(cfg.dev, cfg.src_lang, cfg.tgt_lang) if cfg.dev else None
    dev = read_parallel(*dev_pair, key="data.dev") if dev_pair else None
    if cfg.test:
        for _ in iter_parallel(*resolve_pair(cfg.test, cfg.src_lang, cfg.tgt_lang),
                               key="data.test"):
            pass
    if cfg.src_type == "image" and dev:
        dev = (relative_to(dev[0], dev_pair[0]), dev[1])
    return dev


@dataclass
class FilterStats:
    kept: int = 0
    empty: int = 0
    too_long: int = 0  # targets over data.max_tgt_len: skipped
    truncated: int = 0  # sources over data.max_src_len: kept, cut to the limit
    first_bad: str = ""  # "file:line" of the first skipped pair, for the warning

    @property
    def skipped(self) -> int:
        return self.empty + self.too_long


class PairFilter:
    """Decides, pair by pair, which pairs (of the ``split`` named in the messages) are usable.
    Empty pairs and pairs whose target is over ``max_tgt_len`` are skipped (an error naming the
    line unless ``skip``); sources over ``max_src_len`` are kept (the caller cuts them to the
    limit: the start of a long document still teaches its summary). :meth:`finish` logs the
    counts with their share of the data, as a warning past 1 %."""

    def __init__(self, max_src_len: int, max_tgt_len: int, src_path: str | Path,
                 skip: bool = True, split: str = "training"):
        self.max_src_len, self.max_tgt_len, self.src_path = max_src_len, max_tgt_len, src_path
        self.skip, self.split = skip, split
        self.stats = FilterStats()

    def keep(self, i: int, src: list[str], tgt: list[str]) -> bool:
        """Whether pair ``i`` (0-based line) of tokens ``src``/``tgt`` is kept; counts it."""
        stats, problem = self.stats, ""
        if not src or not tgt:
            stats.empty += 1
            problem = "empty source or target"
        elif len(tgt) > self.max_tgt_len:
            stats.too_long += 1
            problem = f"{len(tgt)} target tokens, over data.max_tgt_len={self.max_tgt_len}"
        if problem:
            if not self.skip:
                raise TransduceError(f"{self.src_path}:{i + 1}: {problem}; fix the line or set "
                                     "data.skip_bad_pairs: true")
            stats.first_bad = stats.first_bad or f"{self.src_path}:{i + 1}"
            return False
        stats.truncated += len(src) > self.max_src_len
        stats.kept += 1
        return True

    def finish(self, total: int) -> FilterStats:
        """The counts of all ``total`` pairs; an error if none was kept."""
        stats = self.stats
        if not stats.kept:
            fix = ("raise data.max_tgt_len" if stats.too_long else
                   "the lines are empty: check the files")
            raise TransduceError(
                f"{self.src_path}: all {total} {self.split} pairs were filtered out "
                f"({stats.empty} empty, {stats.too_long} too long, first at "
                f"{stats.first_bad or self.src_path}); {fix}")
        share = 100.0 * (stats.skipped + stats.truncated) / total
        if stats.skipped or stats.truncated:
            log.log(logging.WARNING if share > 1.0 else logging.INFO,
                    "of %d %s pairs, %d sources were cut to data.max_src_len=%d tokens and "
                    "%d pairs skipped (%d empty, %d with targets over data.max_tgt_len=%d; first "
                    "at %s): %.1f %% of the data", total, self.split, stats.truncated,
                    self.max_src_len, stats.skipped, stats.empty, stats.too_long,
                    self.max_tgt_len, stats.first_bad or "-", share)
        return stats


def filter_pairs(src: list[list[str]], tgt: list[list[str]], max_src_len: int, max_tgt_len: int,
                 src_path: str | Path, skip: bool = True, split: str = "training"
                 ) -> tuple[list[int], FilterStats]:
    """Indices of the usable pairs of token lists ``src``/``tgt`` (:class:`PairFilter`)."""
    check = PairFilter(max_src_len, max_tgt_len, src_path, skip, split)
    keep = [i for i, (s, t) in enumerate(zip(src, tgt)) if check.keep(i, s, t)]
    return keep, check.finish(len(src))
