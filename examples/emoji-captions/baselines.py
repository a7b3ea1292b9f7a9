"""Baselines of the emoji-captions example on both test splits: BLEU, chrF and CIDEr-D against
all references (the CLDR name and the ``.ref2``-``.ref4`` alternatives), and the share of
captions that are exactly the CLDR name.

* ``most frequent``: the most frequent training caption for every image (every caption occurs
  once per training style, so ties are broken by the summed training frequency of the
  caption's distinct words, then alphabetically);
* ``nearest neighbour``: the caption of the training image closest in pixel space (L2 on the
  RGB images downsampled to ``--size`` pixels per side).

Usage: python examples/emoji-captions/baselines.py [--data examples/emoji-captions/data]
"""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from transduce.evaluate import evaluate, read_references

HERE = Path(__file__).resolve().parent
TESTS = ("test_compositional", "test_style")
MAX_REFS = 4


def pixels(data: Path, split: str, size: int) -> np.ndarray:
    """The images of a split as rows of RGB values in [0, 1], downsampled to size x size."""
    paths = (data / f"{split}.src").read_text().splitlines()
    rows = []
    for p in paths:
        with Image.open(data / p) as image:
            small = image.convert("RGB").resize((size, size), Image.Resampling.BOX)
        rows.append(np.asarray(small, dtype=np.float32).ravel() / 255.0)
    return np.stack(rows)


def most_frequent(captions: list[str]) -> str:
    """The most frequent caption; among equally frequent ones, the one whose distinct words are
    the most frequent in ``captions`` in sum, then the alphabetically first."""
    counts = Counter(captions)
    words = Counter(w for c in captions for w in c.split())
    return min(counts, key=lambda c: (-counts[c], -sum(words[w] for w in set(c.split())), c))


def nearest_neighbour(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Index of the closest training row (squared L2) for every test row."""
    dist = (test ** 2).sum(1)[:, None] - 2 * test @ train.T + (train ** 2).sum(1)[None, :]
    return dist.argmin(1)


def scores(hyps: list[str], refs: list[list[str]]) -> dict[str, float]:
    """BLEU, chrF, CIDEr-D and exact match (% of hypotheses equal to the first reference)."""
    out = evaluate(hyps, refs, ["bleu", "chrf", "cider"])
    out["exact"] = 100.0 * sum(h == r[0] for h, r in zip(hyps, refs)) / len(hyps)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=HERE / "data")
    parser.add_argument("--size", type=int, default=16, help="side of the downsampled images")
    args = parser.parse_args()
    train_caps = (args.data / "train.tgt").read_text(encoding="utf-8").splitlines()
    train = pixels(args.data, "train", args.size)
    frequent = most_frequent(train_caps)
    print(f"most frequent training caption: {frequent!r}; nearest neighbour on "
          f"{args.size}x{args.size} RGB, {len(train_caps)} training images\n")
    header = f"{'split':<19} {'baseline':<18} {'images':>6} {'BLEU':>6} {'chrF':>6} " \
             f"{'CIDEr':>6} {'exact%':>6}"
    print(header + "\n" + "-" * len(header))
    for split in TESTS:
        ref_files = [args.data / f"{split}.tgt",
                     *(args.data / f"{split}.ref{k}" for k in range(2, MAX_REFS + 1))]
        refs = read_references([p for p in ref_files if p.is_file()])
        nn = nearest_neighbour(train, pixels(args.data, split, args.size))
        for name, hyps in (("most frequent", [frequent] * len(refs)),
                           ("nearest neighbour", [train_caps[i] for i in nn])):
            s = scores(hyps, refs)
            print(f"{split:<19} {name:<18} {len(refs):>6} {s['bleu']:>6.1f} {s['chrf']:>6.1f} "
                  f"{s['cider']:>6.1f} {s['exact']:>6.1f}")


if __name__ == "__main__":
    main()
