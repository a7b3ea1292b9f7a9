"""Generated tasks for demos, tests and benchmarks: no files or network needed.

- ``reverse``: a sequence of symbols -> the same symbols in reverse order.
- ``dates``: a date written in one of many human formats -> ISO 8601 (``2026-11-26``).
  Attention has to find the year, month and day wherever the format puts them.
- ``rename``: "rename X to Y" in several wordings -> "Y", where X and Y are made-up words that
  (nearly) never repeat: the output is out of vocabulary, so only a copy mechanism can produce it.
"""
from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def reverse_pairs(n: int, vocab: int = 100, min_len: int = 1, max_len: int = 25,
                  seed: int = 1) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    symbols = [f"w{i}" for i in range(vocab)]
    pairs = []
    for _ in range(n):
        seq = [rng.choice(symbols) for _ in range(rng.randint(min_len, max_len))]
        pairs.append((" ".join(seq), " ".join(reversed(seq))))
    return pairs


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 11 <= n % 100 <= 13 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


DATE_FORMATS = [  # (date, month name, weekday name) -> text
    lambda d, m, w: f"{d.day} {m} {d.year}",
    lambda d, m, w: f"{m} {d.day}, {d.year}",
    lambda d, m, w: f"{d.day:02d}/{d.month:02d}/{d.year}",
    lambda d, m, w: f"{w}, {d.day} {m[:3]} {d.year}",
    lambda d, m, w: f"{d.year}.{d.month:02d}.{d.day:02d}",
    lambda d, m, w: f"{m[:3].lower()} {d.day} {d.year}",
    lambda d, m, w: f"the {_ordinal(d.day)} of {m}, {d.year}",
    lambda d, m, w: f"{w[:3]} {m[:3]} {d.day:02d} {d.year}",
    lambda d, m, w: f"{d.day}.{d.month}.{d.year}",
    lambda d, m, w: f"{d.year} {m} {d.day}",
]


def _format_date(d: dt.date, rng: random.Random) -> str:
    return rng.choice(DATE_FORMATS)(d, MONTHS[d.month - 1], DAYS[d.weekday()])


def date_pairs(n: int, seed: int = 1) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    start = dt.date(1900, 1, 1).toordinal()
    end = dt.date(2099, 12, 31).toordinal()
    pairs = []
    for _ in range(n):
        d = dt.date.fromordinal(rng.randint(start, end))
        pairs.append((_format_date(d, rng), d.isoformat()))
    return pairs


RENAME_TEMPLATES = ["rename {x} to {y}", "please call {x} by the new name {y}",
                    "{x} is now called {y}", "change the name {x} into {y}",
                    "from today {x} becomes {y}"]


def _made_up_word(rng: random.Random) -> str:
    return "".join(rng.choice("bcdfghjklmnpqrstvwxz") + rng.choice("aeiou") for _ in range(3))


def rename_pairs(n: int, seed: int = 1, max_words: int = 2) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        x, y = (" ".join(_made_up_word(rng) for _ in range(rng.randint(1, max_words)))
                for _ in range(2))
        pairs.append((rng.choice(RENAME_TEMPLATES).format(x=x, y=y), y))
    return pairs


TASKS = {"reverse": reverse_pairs, "dates": date_pairs, "rename": rename_pairs}


def write_task(task: str, out_dir: str | Path, sizes: dict[str, int], seed: int = 1,
               src_lang: str = "src", tgt_lang: str = "tgt", **kwargs) -> Path:
    """Write ``<out_dir>/<split>.<src_lang|tgt_lang>`` for each split in ``sizes``.

    Splits use different seeds; held-out sources that also occur in train are regenerated
    away, so dev/test measure generalisation.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    for k, (split, size) in enumerate(sizes.items()):
        pairs = TASKS[task](size * 2 if k else size, seed=seed * 1000 + k, **kwargs)
        if k:
            pairs = [p for p in pairs if p[0] not in seen][:size]
        seen.update(s for s, _ in pairs)
        for side, lang in ((0, src_lang), (1, tgt_lang)):
            (out / f"{split}.{lang}").write_text("".join(p[side] + "\n" for p in pairs),
                                                 encoding="utf-8")
    return out


def main() -> None:
    """``python -m transduce.data.generate reverse data/reverse --train 20000 --vocab 50``"""
    import argparse

    p = argparse.ArgumentParser(description="write a generated parallel corpus")
    p.add_argument("task", choices=sorted(TASKS))
    p.add_argument("out_dir")
    p.add_argument("--train", type=int, default=20000)
    p.add_argument("--dev", type=int, default=500)
    p.add_argument("--test", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--vocab", type=int, default=None, help="reverse: number of symbols")
    p.add_argument("--max-len", type=int, default=None, help="reverse: longest sequence")
    a = p.parse_args()
    extra = {k: v for k, v in (("vocab", a.vocab), ("max_len", a.max_len)) if v is not None}
    out = write_task(a.task, a.out_dir, {"train": a.train, "dev": a.dev, "test": a.test},
                     seed=a.seed, **extra)
    print(f"wrote {a.task} train/dev/test ({a.train}/{a.dev}/{a.test} pairs) to {out}")


if __name__ == "__main__":
    main()
