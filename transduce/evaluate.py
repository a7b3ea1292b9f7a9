"""Scores on detokenized text: BLEU and chrF from sacrebleu, ROUGE-1/2/L F1 from rouge-score,
CIDEr-D (the captioning metric of the COCO evaluation) and ``repeat``: the rate of repeated
trigrams in the outputs (the degeneration coverage fights).

A hypothesis has one reference or several (a list per hypothesis; the counts may differ):
BLEU and chrF pass them to sacrebleu as reference streams, ROUGE takes the best reference per
hypothesis, CIDEr-D averages over them.

BLEU, chrF and ROUGE are on a 0-100 scale; CIDEr-D is 100 times the COCO evaluation's number,
as papers print it (a perfect caption scores up to 1000). BLEU and chrF come with sacrebleu's
signature so that a reported number can be reproduced exactly.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from transduce.errors import TransduceError

METRICS = ("bleu", "chrf", "rouge", "cider", "repeat")
References = Sequence[str | Sequence[str]]  # per hypothesis: a reference or a list of them
CIDER_TOKEN_RE = re.compile(r"\w+(?:[-'’]\w+)*")  # lowercased words; punctuation dropped


def evaluate(hyps: Sequence[str], refs: References,
             metrics: Iterable[str] = ("bleu", "chrf")) -> dict:
    """Corpus-level scores of ``hyps`` against ``refs``: per hypothesis one reference string or
    a non-empty list of reference strings.

    Returns keys among ``bleu``, ``chrf``, ``rouge1``, ``rouge2``, ``rougeL``, ``cider``,
    ``repeat3`` and ``signature`` (a dict of sacrebleu signatures by metric).
    """
    metrics = [m.strip().lower() for m in metrics]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise TransduceError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRICS)}")
    if len(hyps) != len(refs):
        raise TransduceError(f"{len(hyps)} hypotheses but {len(refs)} references; "
                             "the files must have the same number of lines")
    ref_lists = reference_lists(refs)
    out: dict = {}
    signatures = {}
    if "bleu" in metrics or "chrf" in metrics:
        from sacrebleu.metrics import BLEU, CHRF

        width = max((len(r) for r in ref_lists), default=1)
        streams = [[r[j] if j < len(r) else None for r in ref_lists] for j in range(width)]
        for name, metric in (("bleu", BLEU()), ("chrf", CHRF())):
            if name in metrics:
                out[name] = metric.corpus_score(list(hyps), streams).score
                signatures[name] = str(metric.get_signature())
    if "rouge" in metrics:
        out.update(rouge(hyps, ref_lists))
    if "cider" in metrics:
        out["cider"] = 100.0 * cider_d(hyps, ref_lists)
    if "repeat" in metrics:
        out["repeat3"] = 100.0 * repeated_ngram_rate(hyps, 3)
    if signatures:
        out["signature"] = signatures
    return out


def reference_lists(refs: References) -> list[list[str]]:
    """``refs`` as one list of references per hypothesis; a hypothesis needs at least one."""
    out = [[r] if isinstance(r, str) else list(r) for r in refs]
    for i, r in enumerate(out):
        if not r or not all(isinstance(x, str) for x in r):
            raise TransduceError(f"reference {i + 1}: give a string or a non-empty list of strings")
    return out


def read_references(paths: Sequence[str | Path]) -> list[list[str]]:
    """Several line-aligned reference files as one list per line: every line of the first file
    is a reference; an empty line of a further file means no further reference for that line."""
    from transduce.data.corpus import read_lines

    files = [read_lines(p) for p in paths]
    for path, lines in zip(paths[1:], files[1:]):
        if len(lines) != len(files[0]):
            raise TransduceError(f"{path}: {len(lines)} lines but {paths[0]} has {len(files[0])}; "
                                 "reference files must be line-aligned")
    return [[first, *(r for r in rest if r)] for first, *rest in zip(*files)]


def rouge(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F1 (x100) with rouge-score's default English tokenizer and stemming;
    with several references, the best one per hypothesis and ROUGE type."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for h, r in zip(hyps, refs):
        for key, s in scorer.score_multi(list(r), h).items():
            totals[key] += s.fmeasure
    n = max(1, len(hyps))
    return {k: 100.0 * v / n for k, v in totals.items()}


def _ngrams(text: str, n: int = 4) -> Counter:
    """Counts of the 1- to ``n``-grams of ``text`` in CIDEr's tokens (``CIDER_TOKEN_RE``)."""
    words = CIDER_TOKEN_RE.findall(text.lower())
    return Counter(tuple(words[i:i + k])
                   for k in range(1, n + 1) for i in range(len(words) - k + 1))


def cider_d(hyps: Sequence[str], refs: Sequence[Sequence[str]], n: int = 4,
            sigma: float = 6.0) -> float:
    """Corpus CIDEr-D (Vedantam et al., 2015) exactly as the COCO caption evaluation computes it
    (pycocoevalcap's ``Cider``): TF-IDF vectors of 1..n-grams, idf from the document frequency
    over each hypothesis's reference set, hypothesis counts clipped to the reference's, a
    Gaussian penalty on the length difference, the mean over n and over references, times 10,
    averaged over hypotheses. Like pycocoevalcap, the "length" is the number of bigrams, and
    the text is compared in lowercased words without punctuation (the PTB tokenizer's role).
    The idf is a corpus statistic: a single hypothesis always scores 0."""
    hyp_grams = [_ngrams(h, n) for h in hyps]
    ref_grams = [[_ngrams(r, n) for r in rs] for rs in refs]
    df = Counter(g for rs in ref_grams for g in set().union(*rs))
    log_docs = math.log(max(1, len(ref_grams)))

    def vector(counts: Counter) -> tuple[list[dict], list[float], int]:
        vec: list[dict] = [{} for _ in range(n)]
        for gram, tf in counts.items():
            vec[len(gram) - 1][gram] = tf * (log_docs - math.log(max(1.0, df[gram])))
        norms = [math.sqrt(sum(v * v for v in level.values())) for level in vec]
        return vec, norms, sum(tf for gram, tf in counts.items() if len(gram) == 2)

    total = 0.0
    for h, rs in zip(hyp_grams, ref_grams):
        vh, nh, lh = vector(h)
        score = 0.0
        for r in rs:
            vr, nr, lr = vector(r)
            penalty = math.exp(-((lh - lr) ** 2) / (2 * sigma ** 2))
            for k in range(n):
                val = sum(min(w, vr[k].get(g, 0.0)) * vr[k].get(g, 0.0) for g, w in vh[k].items())
                if nh[k] and nr[k]:
                    val /= nh[k] * nr[k]
                score += val * penalty
        total += 10.0 * score / n / len(rs)
    return total / max(1, len(hyps))


def repeated_ngram_rate(texts: Iterable[str], n: int = 3) -> float:
    """The fraction of whitespace-token n-grams that repeat an earlier n-gram of the same text."""
    total = repeats = 0
    for text in texts:
        words = text.split()
        grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        total += len(grams)
        repeats += len(grams) - len(set(grams))
    return repeats / total if total else 0.0


def perplexity(total_nll: float, n_tokens: int) -> float:
    return math.exp(min(total_nll / max(1, n_tokens), 100.0))
