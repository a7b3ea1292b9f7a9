"""What lexical constraints cost: beam search with and without them on a trained model.

    .venv/bin/python benchmarks/constraints.py MODEL_DIR --src test.en --ref test.fr [-n 300]

Per sentence the constraints are words of its reference that the unconstrained output misses
(the terminology case: a translator insists on the right term), the longest first: one, then
two. Prints, at beam 5 (``--beam``), sentences/s, BLEU and chrF, and the share of outputs that
hold every constraint (after NFKC, as SentencePiece writes "…" as "..."), for no constraints,
one and two; the slowdown is the ratio of the times
(the same sentences, the same batch size, one after the other in one process).
"""
from __future__ import annotations

import argparse
import sys
import time
import unicodedata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import transduce  # noqa: E402
from transduce.data.corpus import read_lines  # noqa: E402


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def pick(output: str, reference: str, n: int) -> list[str]:
    """Up to ``n`` words of ``reference`` missing from ``output``, longest first (else the
    reference's longest words)."""
    out = set(output.split())
    words = sorted(set(reference.split()), key=lambda w: (-len(w), w))
    missing = [w for w in words if w not in out]
    return (missing + [w for w in words if w in out])[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir")
    ap.add_argument("--src", required=True)
    ap.add_argument("--ref", required=True)
    ap.add_argument("-n", type=int, default=300, help="sentences (the first n)")
    ap.add_argument("--beam", type=int, default=5)
    args = ap.parse_args()
    model = transduce.load(args.model_dir, device="cpu")
    src, ref = read_lines(args.src)[:args.n], read_lines(args.ref)[:args.n]
    rows = []
    free = None
    for n in (0, 1, 2):
        cons = None if n == 0 else [pick(o, r, n) for o, r in zip(free, ref)]
        start = time.perf_counter()
        out = model.translate(src, beam_size=args.beam, constraints=cons)
        secs = time.perf_counter() - start
        if n == 0:
            free = out
        held = 100.0 if cons is None else 100 * sum(  # NFKC: as SentencePiece normalizes
            all(nfkc(w) in nfkc(o) for w in c) for o, c in zip(out, cons)) / len(out)
        scores = transduce.evaluate(out, [[r] for r in ref], metrics=["bleu", "chrf"])
        rows.append((n, len(src) / secs, secs, scores["bleu"], scores["chrf"], held))
    print(f"{len(src)} sentences of {args.src}, beam {args.beam}, model {args.model_dir}\n")
    print("| constraints per sentence | sent/s | slowdown | BLEU | chrF | outputs holding all |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, rate, secs, bleu, chrf, held in rows:
        print(f"| {n} | {rate:.1f} | {secs / rows[0][2]:.2f}x | {bleu:.1f} | {chrf:.1f} | "
              f"{held:.0f} % |")


if __name__ == "__main__":
    main()
