"""Reading and validating parallel text.

A corpus is two UTF-8 files with one segment per line, line i of one aligned with line i of the
other. Every problem is reported with the file and line and what to do about it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from transduce.errors import TransduceError

if TYPE_CHECKING:  # the command line reads files with this module: pydantic stays unloaded
    from transduce.config import DataConfig

log = logging.getLogger("transduce")


def read_lines(path: str | Path) -> list[str]:
    """All lines of a UTF-8 text file, without line endings or surrounding whitespace."""
    path = Path(path)
    if not path.exists():
        raise TransduceError(f"{path}: file not found; check the path")
    if not path.is_file():
        raise TransduceError(f"{path}: not a regular file")
    return split_lines(path.read_bytes(), str(path),
                       "convert the file to UTF-8, e.g. with iconv")


def split_lines(raw: bytes, name: str, fix: str) -> list[str]:
    """Decode UTF-8 bytes into stripped lines; ``name`` and ``fix`` (how to convert to UTF-8)
    make the error messages.

    Only ``\\n`` ends a line (``\\r\\n`` too: the ``\\r`` is stripped). Refused: invalid UTF-8;
    a NUL byte (binary data, or UTF-16/32 text); CR-only line endings (no ``\\n`` at all but a
    ``\\r``), which would read as one huge line. A byte-order mark (U+FEFF) at the start is
    dropped; inside the text (files joined with ``cat``) each one is removed too, with a warning
    saying how many: it is invisible and never part of a word."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise TransduceError(f"{name}:{line}: invalid UTF-8 ({e.reason} at byte {e.start}); "
                             f"{fix}") from None
    nul = raw.find(b"\0")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        raise TransduceError(f"{name}:{line}: NUL byte at byte {nul}: this is binary data or "
                             f"UTF-16/UTF-32 text, not UTF-8 text; {fix}")
    if "\n" not in text and "\r" in text:
        raise TransduceError(f"{name}: the lines end in CR only (old Mac line endings: "
                             f"{text.count(chr(13))} CR, no LF), so it would read as one line; "
                             "convert them to LF, e.g. with tr '\\r' '\\n' or mac2unix")
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\ufeff" in text:
        first = text.count("\n", 0, text.index("\ufeff")) + 1
        log.warning("%s:%d: removed %d byte-order mark(s) (U+FEFF) inside the text (files "
                    "joined with cat?)", name, first, text.count("\ufeff"))
        text = text.replace("\ufeff", "")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln.strip() for ln in lines]


def resolve_pair(prefix: str, src_lang: str, tgt_lang: str) -> tuple[Path, Path]:
    """``data/train`` + ``es``/``en`` -> ``data/train.es``, ``data/train.en``."""
    return Path(f"{prefix}.{src_lang}"), Path(f"{prefix}.{tgt_lang}")


def read_parallel(src_path: str | Path, tgt_path: str | Path,
                  key: str | None = None) -> tuple[list[str], list[str]]:
    """Read two aligned files; their line counts must match and they must not be empty.

    ``key`` names the config key the paths came from (``data.train``), for the messages.
    """
    for path in (src_path, tgt_path):
        if key and not Path(path).exists():
            raise TransduceError(f"{path}: file not found; config key '{key}' is a path prefix: "
                                 f"'{Path(src_path).with_suffix('')}' means {src_path} and "
                                 f"{tgt_path}. Fix {key}, data.src_lang or data.tgt_lang")
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        short, n = (src_path, len(src)) if len(src) < len(tgt) else (tgt_path, len(tgt))
        raise TransduceError(
            f"{short}:{n + 1}: line-count mismatch: {src_path} has {len(src)} lines, "
            f"{tgt_path} has {len(tgt)}; each source line needs exactly one target line")
    if not src:
        raise TransduceError(f"{src_path}: the file is empty; a corpus needs at least one pair "
                             "of lines (source line i translates to target line i)")
    return src, tgt


def relative_to(lines: list[str], list_path: str | Path) -> list[str]:
    """Image paths of a list file, each relative to the list file's folder (absolute ones stay);
    empty lines stay empty."""
    base = Path(list_path).parent
    return [str(base / line) if line else "" for line in lines]


@dataclass(frozen=True)
class Part:
    """One training corpus inside the concatenated training lines."""
    src_path: Path  # its source file (messages name it, with the line)
    start: int  # its first line in the concatenated lists
    end: int
    weight: float  # an epoch holds weight x its pairs (data.train's weights)


def read_corpora(cfg: DataConfig) -> tuple[tuple[list[str], list[str]], list[Part],
                                          tuple[list[str], list[str]] | None]:
    """The training pairs (the corpora of ``data.train`` one after another), where each corpus
    is in them, and the dev pairs (None without ``data.dev``); ``data.test`` is read too, so
    that a typo does not wait for hours of training. Image sources (``data.src_type: image``)
    come back as paths relative to here."""
    if not cfg.train:
        raise TransduceError("config key 'data.train' is not set; give the training file "
                             "prefix (data/train for data/train.<src_lang>, .<tgt_lang>)")
    src, tgt, parts = [], [], []
    for corpus in cfg.corpora():
        src_path, tgt_path = resolve_pair(corpus.path, cfg.src_lang, cfg.tgt_lang)
        s, t = read_parallel(src_path, tgt_path, key="data.train")
        parts.append(Part(src_path, len(src), len(src) + len(s), corpus.weight))
        src += relative_to(s, src_path) if cfg.src_type == "image" else s
        tgt += t
    dev_pair = resolve_pair(cfg.dev, cfg.src_lang, cfg.tgt_lang) if cfg.dev else None
    dev = read_parallel(*dev_pair, key="data.dev") if dev_pair else None
    if cfg.test:
        read_parallel(*resolve_pair(cfg.test, cfg.src_lang, cfg.tgt_lang), key="data.test")
    if cfg.src_type == "image" and dev:
        dev = (relative_to(dev[0], dev_pair[0]), dev[1])
    return (src, tgt), parts, dev


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


def filter_pairs(src: list[list[str]], tgt: list[list[str]], max_src_len: int, max_tgt_len: int,
                 src_path: str | Path, skip: bool = True, split: str = "training"
                 ) -> tuple[list[int], FilterStats]:
    """Indices of usable pairs (of the ``split`` named in the messages). Empty pairs and pairs
    whose target is over ``max_tgt_len`` are skipped; sources over ``max_src_len`` are kept (the
    caller cuts them to the limit: the start of a long document still teaches its summary). Both
    are counted and logged with their share of the data, as a warning past 1 %."""
    stats = FilterStats()
    keep = []
    for i, (s, t) in enumerate(zip(src, tgt)):
        problem = ""
        if not s or not t:
            stats.empty += 1
            problem = "empty source or target"
        elif len(t) > max_tgt_len:
            stats.too_long += 1
            problem = f"{len(t)} target tokens, over data.max_tgt_len={max_tgt_len}"
        if problem:
            if not skip:
                raise TransduceError(f"{src_path}:{i + 1}: {problem}; fix the line or set "
                                     "data.skip_bad_pairs: true")
            stats.first_bad = stats.first_bad or f"{src_path}:{i + 1}"
            continue
        stats.truncated += len(s) > max_src_len
        keep.append(i)
    stats.kept = len(keep)
    if not keep:
        fix = ("raise data.max_tgt_len" if stats.too_long else
               "the lines are empty: check the files")
        raise TransduceError(
            f"{src_path}: all {len(src)} {split} pairs were filtered out ({stats.empty} empty, "
            f"{stats.too_long} too long, first at {stats.first_bad or src_path}); {fix}")
    share = 100.0 * (stats.skipped + stats.truncated) / len(src)
    if stats.skipped or stats.truncated:
        log.log(logging.WARNING if share > 1.0 else logging.INFO,
                "of %d %s pairs, %d sources were cut to data.max_src_len=%d tokens and "
                "%d pairs skipped (%d empty, %d with targets over data.max_tgt_len=%d; first at "
                "%s): %.1f %% of the data", len(src), split, stats.truncated, max_src_len,
                stats.skipped, stats.empty, stats.too_long, max_tgt_len,
                stats.first_bad or "-", share)
    return keep, stats
