"""Scores on detokenized text: BLEU and chrF from sacrebleu, ROUGE-1/2/L F1 from rouge-score, and
``repeat``: the rate of repeated trigrams in the outputs (the degeneration coverage fights).

All scores are on a 0-100 scale. BLEU and chrF come with sacrebleu's signature so that a reported
number can be reproduced exactly.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

from transduce.errors import TransduceError

METRICS = ("bleu", "chrf", "rouge", "repeat")


def evaluate(hyps: Sequence[str], refs: Sequence[str],
             metrics: Iterable[str] = ("bleu", "chrf")) -> dict:
    """Corpus-level scores of ``hyps`` against ``refs`` (one reference per hypothesis).

    Returns keys among ``bleu``, ``chrf``, ``rouge1``, ``rouge2``, ``rougeL``, ``repeat3`` and
    ``signature`` (a dict of sacrebleu signatures by metric).
    """
    metrics = [m.strip().lower() for m in metrics]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise TransduceError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRICS)}")
    if len(hyps) != len(refs):
        raise TransduceError(f"{len(hyps)} hypotheses but {len(refs)} references; "
                             "the files must have the same number of lines")
    out: dict = {}
    signatures = {}
    if "bleu" in metrics or "chrf" in metrics:
        from sacrebleu.metrics import BLEU, CHRF

        for name, metric in (("bleu", BLEU()), ("chrf", CHRF())):
            if name in metrics:
                out[name] = metric.corpus_score(list(hyps), [list(refs)]).score
                signatures[name] = str(metric.get_signature())
    if "rouge" in metrics:
        out.update(rouge(hyps, refs))
    if "repeat" in metrics:
        out["repeat3"] = 100.0 * repeated_ngram_rate(hyps, 3)
    if signatures:
        out["signature"] = signatures
    return out


def rouge(hyps: Sequence[str], refs: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F1 (x100) with rouge-score's default English tokenizer and stemming."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for h, r in zip(hyps, refs):
        for key, s in scorer.score(r, h).items():
            totals[key] += s.fmeasure
    n = max(1, len(hyps))
    return {k: 100.0 * v / n for k, v in totals.items()}


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
