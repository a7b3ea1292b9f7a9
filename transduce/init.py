"""``transduce init``: read a corpus once, print what it looks like, write a config for it.

The statistics are whitespace-token and character counts of the raw lines (the tokenizer is not
trained yet). The config's settings follow the same rules as the defaults (docs/config.md,
issue #15's measurements): SentencePiece unless the corpus has few distinct words (generated
tasks, codes), the length limits of the defaults raised only where more than 1 % of the targets
would be skipped, ``model.copy: auto`` left to the trainer's profile of the same data
(``data/profile.py``), the vocabulary, model and batch sizes written out at the defaults (no
alternatives measured beat them: SIZED), and a dev set carved from the training pairs
when none is given.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transduce.config import DataConfig, ModelConfig, TrainingConfig
from transduce.data.corpus import read_parallel, resolve_pair
from transduce.data.profile import decide_copy, profile
from transduce.errors import TransduceError

WORD_TYPES = 2000  # distinct words per side up to which a word vocabulary holds them all
DEV_PAIRS, DEV_SHARE = 1000, 0.05  # a carved dev set: at most this many, at most this share
PIECES_PER_WORD = 1.4  # SentencePiece pieces per whitespace word, roughly (8k-piece models)
# Vocabulary, model and batch size are written out at the defaults: on the suite's corpora of 940
# to 4,939 pairs, smaller vocabularies, dropout 0.3, a smaller model and half-size batches each
# lost or tied at 10 minutes, and on larger corpora the model is still learning at the budget
# (docs/init.md, "Corpus size"). SentencePiece builds fewer pieces when the text holds fewer.
SIZED = {"data": ("vocab_size",), "model": ("embedding_size", "encoder_hidden_size",
                                            "decoder_hidden_size", "dropout"),
         "training": ("batch_size",)}
SIZED_WHY = "the defaults: each alternative measured on 940-4,939 pairs lost or tied; docs/init.md"


@dataclass(frozen=True)
class SideStats:
    words: tuple[int, int, int, int]  # whitespace tokens per line: median, 95th, 99th, max
    chars: tuple[int, int, int, int]  # characters per line: the same percentiles
    types: int  # distinct whitespace tokens
    charset: int  # distinct characters


def _side(lines: list[str]) -> SideStats:
    words = np.array([len(line.split()) for line in lines]) if lines else np.zeros(1)
    chars = np.array([len(line) for line in lines]) if lines else np.zeros(1)
    pct = (lambda a: tuple(int(np.percentile(a, q)) for q in (50, 95, 99)) + (int(a.max()),))
    return SideStats(pct(words), pct(chars), len({w for line in lines for w in line.split()}),
                     len(set("".join(lines))))


def _lengths(s: SideStats) -> str:
    return (f"words per line median {s.words[0]}, 95% {s.words[1]}, 99% {s.words[2]}, max "
            f"{s.words[3]}; characters median {s.chars[0]}, 99% {s.chars[2]}; {s.types:,} "
            f"distinct words, {s.charset:,} distinct characters")


def summarize(src: list[str], tgt: list[str], src_lang: str, tgt_lang: str) -> tuple[str, dict]:
    """The statistics as text, and the data settings they call for (a ``data`` section dict)."""
    s, t = _side(src), _side(tgt)
    empty = sum(1 for a, b in zip(src, tgt) if not a.strip() or not b.strip())
    duplicates = len(src) - len(set(zip(src, tgt)))
    p = profile(src, tgt)
    copy, coverage, why = decide_copy(p)
    word = max(s.types, t.types) <= WORD_TYPES
    data: dict = {"tokenizer": "word" if word else "sentencepiece"}
    # targets over max_tgt_len are skipped: raise it until at most 1 % would be
    est = t.words[2] * (1 if word else PIECES_PER_WORD)
    default = DataConfig().max_tgt_len
    if est > default:
        data["max_tgt_len"] = int(math.ceil(est / 10) * 10)
    text = "\n".join([
        f"{len(src):,} pairs; {empty:,} with an empty side, {duplicates:,} duplicate pairs",
        f"source ({src_lang}): {_lengths(s)}",
        f"target ({tgt_lang}): {_lengths(t)}",
        f"estimated {'words' if word else 'SentencePiece pieces'} per target line, 99%: "
        f"{est:.0f} (data.max_tgt_len {data.get('max_tgt_len', default)})",
        f"copy: {why} -> model.copy: auto will choose copy {str(copy).lower()}, coverage "
        f"{str(coverage).lower()}",
        f"tokenizer: {data['tokenizer']} ({max(s.types, t.types):,} distinct words on the "
        f"larger side; word vocabularies up to {WORD_TYPES:,})",
        f"size ({len(src):,} pairs): " + ", ".join(
            f"{sec}.{k} {v}" for sec, kv in sized(word).items() for k, v in kv.items())
        + f" ({SIZED_WHY})"])
    return text, data


def sized(word: bool) -> dict[str, dict]:
    """The size settings init writes (SIZED, at their defaults), by section; no vocabulary size
    for word vocabularies."""
    defaults = {"data": DataConfig(), "model": ModelConfig(), "training": TrainingConfig()}
    return {sec: {k: getattr(defaults[sec], k) for k in keys if not (word and k == "vocab_size")}
            for sec, keys in SIZED.items()}


def carve_dev(prefix: str, src_lang: str, tgt_lang: str, src: list[str], tgt: list[str],
              seed: int = 1) -> tuple[str, str]:
    """Split the pairs into ``<prefix>.train`` and ``<prefix>.dev`` files (a seeded sample of
    at most DEV_PAIRS and DEV_SHARE for dev); returns the two new prefixes."""
    n = min(DEV_PAIRS, int(DEV_SHARE * len(src)))
    if n < 1:
        raise TransduceError(f"{prefix}: {len(src)} pairs are too few to carve a dev set from; "
                             "give one with --dev")
    dev = set(random.Random(seed).sample(range(len(src)), n))
    out = {}
    for part in ("train", "dev"):
        keep = [i for i in range(len(src)) if (i in dev) == (part == "dev")]
        out[part] = f"{prefix}.{part}"
        for lang, lines in ((src_lang, src), (tgt_lang, tgt)):
            path = Path(f"{out[part]}.{lang}")
            if path.exists():
                raise TransduceError(f"{path}: exists; transduce init does not overwrite data "
                                     "files: move it, or give the dev set with --dev")
            path.write_text("".join(lines[i] + "\n" for i in keep), encoding="utf-8")
    return out["train"], out["dev"]


def write_config(train: str, src_lang: str, tgt_lang: str, dev: str | None, out: Path) -> str:
    """Read the corpus, write the commented config to ``out`` (carving a dev set when ``dev`` is
    None); returns the statistics text."""
    src, tgt = read_parallel(*resolve_pair(train, src_lang, tgt_lang), key="train")
    text, data = summarize(src, tgt, src_lang, tgt_lang)
    corpus, name = f"{train}.{{{src_lang},{tgt_lang}}}", f"{src_lang}-{tgt_lang}"
    if dev is None:
        train, dev = carve_dev(train, src_lang, tgt_lang, src, tgt)
        text += (f"\ndev: {dev}.{{{src_lang},{tgt_lang}}} carved from the training pairs, the "
                 f"rest in {train}.{{{src_lang},{tgt_lang}}}")
    size = sized(data["tokenizer"] == "word")
    why = f"   # {SIZED_WHY}"
    section = (lambda sec: [f"  {k}: {v}{why if i == 0 else ''}"
                            for i, (k, v) in enumerate(size[sec].items())])
    lines = [f"# written by transduce init from {corpus}",
             *(f"# {line}" for line in text.splitlines()),
             "# every other key has its default: docs/config.md", f"name: {name}",
             f"model_dir: runs/{name}", "data:", f"  train: {train}",
             *([f"  dev: {dev}"] if dev else []), f"  src_lang: {src_lang}",
             f"  tgt_lang: {tgt_lang}", *(f"  {k}: {v}" for k, v in data.items()),
             *section("data"), "model:", *section("model"),
             "training:", *section("training"),
             "  max_minutes: 60   # the budget: training runs this long (or to early stopping, "
             "training.patience); best/ is the best on dev"]
    if out.exists():
        raise TransduceError(f"{out}: exists; choose another -o, or remove it")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return text
