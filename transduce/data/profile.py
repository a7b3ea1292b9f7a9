"""What a training corpus looks like, measured on a sample: lengths, how much of each target is
copied from its source, how much shorter targets are. The data-driven defaults read it
(``model.copy: auto``); ``train.log`` reports it.

Measured on the raw lines, so the decision does not depend on the tokenizer (SentencePiece
pieces of a copied word are the same pieces on both sides anyway): lengths in whitespace tokens,
the copied share in runs of word characters that are not all digits (:data:`WORD`), so that code
and markup, whose whitespace tokens glue names to punctuation (``f(a,`` -> ``f(a: int,``),
count the names they copy, while digits (dates, numbers: rewritten as often as copied) do not.
On the suite (issue #15) whitespace tokens gave typed-signatures 25 % (copy off) where its
targets copy 63 % of their names; translation stays at 2-19 % either way.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Iterable

from transduce.config import Config

SAMPLE = 2000  # pairs: enough for shares within about ±2 %
WORD = re.compile(r"\w*[^\W\d]\w*")  # a copied token: a run of word characters, not all digits

# model.copy: auto turns copying on when at least this share of target tokens occurs in the
# source line (the generated copy tasks: 100 %; summaries of man pages: ~50 %; translation
# between languages of one script: names and numbers only, under 20 %)
COPY_OVERLAP = 0.4
# ... and coverage too when targets are this much shorter than their sources (summaries):
# coverage keeps the decoder from attending to (and copying) the same source words again
COVERAGE_RATIO = 0.5


@dataclass(frozen=True)
class Profile:
    pairs: int  # pairs measured (a sample of at most SAMPLE)
    overlap: float  # share of the target's WORD runs that also occur in its source line
    length_ratio: float  # target tokens / source tokens, over the sample
    src_tokens: float  # mean source length in tokens
    tgt_tokens: float  # mean target length in tokens


def profile(src: list[str], tgt: list[str], sample: int = SAMPLE, seed: int = 1) -> Profile:
    """Measure up to ``sample`` pairs of line-aligned ``src``/``tgt`` (picked with ``seed``, so
    the same corpus always gives the same profile). Empty pairs are left out."""
    nonempty = sum(1 for s, t in zip(src, tgt) if s.strip() and t.strip())
    return measure(pick(zip(src, tgt), nonempty, sample, seed))


def pick(pairs: Iterable[tuple[str, str]], nonempty: int, sample: int = SAMPLE,
         seed: int = 1) -> list[tuple[str, str]]:
    """The pairs :func:`profile` measures, in corpus order, read in one pass over ``pairs``
    whose ``nonempty`` non-empty pairs were counted before (a corpus too large for memory is
    read twice, never held): all of them, or ``sample`` of them picked with ``seed``."""
    chosen = (iter(sorted(random.Random(seed).sample(range(nonempty), sample)))
              if nonempty > sample else iter(range(nonempty)))
    want, j, out = next(chosen, -1), 0, []
    for s, t in pairs:
        if want < 0:
            break
        if s.strip() and t.strip():
            if j == want:
                out.append((s, t))
                want = next(chosen, -1)
            j += 1
    return out


def measure(pairs: list[tuple[str, str]]) -> Profile:
    """The :class:`Profile` of the (non-empty) ``pairs``."""
    copied = n_src = n_tgt = 0
    words_t = 0
    for s, t in pairs:
        words, t_words = set(WORD.findall(s)), WORD.findall(t)
        copied += sum(w in words for w in t_words)
        words_t += len(t_words)
        n_src += len(s.split())
        n_tgt += len(t.split())
    n = max(len(pairs), 1)
    return Profile(len(pairs), copied / max(words_t, 1), n_tgt / max(n_src, 1), n_src / n,
                   n_tgt / n)


def decide_copy(p: Profile) -> tuple[bool, bool, str]:
    """``model.copy: auto``: (copy, coverage, the reason in words, for the log)."""
    share = f"{100 * p.overlap:.0f} % of target tokens occur in their source"
    if p.overlap < COPY_OVERLAP:
        return False, False, f"{share} (copy from {100 * COPY_OVERLAP:.0f} %): plain attention"
    if p.length_ratio < COVERAGE_RATIO:
        return True, True, (f"{share}, and targets are {p.length_ratio:.2f}x as long as sources "
                            f"(< {COVERAGE_RATIO}): copy and coverage on")
    return True, False, f"{share}: copy on"


def resolve_auto(config: Config, src: list[str], tgt: list[str],
                 measured: Profile | None = None) -> tuple[Config, str]:
    """``config`` with ``model.copy`` / ``model.coverage: auto`` decided from the training pairs
    (:func:`decide_copy`; coverage needs mlp attention), and the decision with its reason for the
    log ("" when nothing was auto). Settings the user gave stay as they are; the result is what
    config.yaml records. ``measured``: the pairs' profile when it is known already (the
    training-data cache's), else it is measured on ``src``/``tgt``."""
    m = config.model
    if "auto" not in (m.copy, m.coverage):
        return config, ""
    if config.data.src_type == "image":
        copy, coverage, why = False, False, "image sources have no tokens to copy"
    else:
        p = measured or profile(src, tgt)
        copy, coverage, why = decide_copy(p)
        why += f", in {p.pairs} sampled pairs"
    copy = copy and m.attention != "none" and m.arch == "rnn" if m.copy == "auto" else m.copy
    coverage = coverage and copy and m.attention == "mlp" if m.coverage == "auto" else m.coverage
    note = (f"model.copy: auto -> {str(copy).lower()}, model.coverage: auto -> "
            f"{str(coverage).lower()} ({why})")
    return config.model_copy(update={"model": m.model_copy(update={"copy": copy,
                                                                  "coverage": coverage})}), note
