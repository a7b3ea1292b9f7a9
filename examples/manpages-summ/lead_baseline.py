"""Lead-N baseline: the first N words of each description, scored with ROUGE against the summaries.

N defaults to the median summary length (in words) of the training split, so nothing is tuned on
the test data.  Scores are mean ROUGE-1/2/L F1 x 100 from the rouge-score package with its
stemmer — the same settings as ``transduce evaluate --metrics rouge``.

    python examples/manpages-summ/lead_baseline.py [--data DIR] [--split test] [--n N]
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

SRC, TGT = "desc", "summary"


def read(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def lead(text: str, n: int) -> str:
    """The first ``n`` words of ``text``."""
    return " ".join(text.split()[:n])


def median_length(lines: list[str]) -> int:
    """Median length in words, rounded: the N of lead-N."""
    return round(statistics.median(len(line.split()) for line in lines))


def rouge(hyps: list[str], refs: list[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F1 on a 0-100 scale."""
    from rouge_score import rouge_scorer  # imported here: it loads nltk, which takes a second

    keys = ("rouge1", "rouge2", "rougeL")
    scorer = rouge_scorer.RougeScorer(list(keys), use_stemmer=True)
    totals = dict.fromkeys(keys, 0.0)
    for hyp, ref in zip(hyps, refs, strict=True):
        for key, score in scorer.score(ref, hyp).items():
            totals[key] += score.fmeasure
    return {key: 100 * total / max(len(refs), 1) for key, total in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parent / "data")
    parser.add_argument("--split", default="test")
    parser.add_argument("--n", type=int, help="words to keep (default: median train summary length)")
    args = parser.parse_args()
    n = args.n or median_length(read(args.data / f"train.{TGT}"))
    sources = read(args.data / f"{args.split}.{SRC}")
    refs = read(args.data / f"{args.split}.{TGT}")
    scores = rouge([lead(s, n) for s in sources], refs)
    print(f"lead-{n} baseline on {args.split} ({len(refs)} pairs): "
          + "  ".join(f"{k} {v:.2f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
