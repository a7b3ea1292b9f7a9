"""Generated tasks for demos, tests and benchmarks: no files or network needed.

- ``reverse``: a sequence of symbols -> the same symbols in reverse order.
- ``dates``: a date written in one of many human formats -> ISO 8601 (``2026-11-26``).
  Attention has to find the year, month and day wherever the format puts them.
- ``rename``: "rename X to Y" in several wordings -> "Y", where X and Y are made-up words that
  (nearly) never repeat: the output is out of vocabulary, so only a copy mechanism can produce it.
- ``shapes`` (image captioning, :func:`write_shapes`): a picture of two coloured shapes ->
  "a red circle left of a blue square".
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

COLOURS = {"red": (215, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 220),
           "yellow": (235, 200, 30)}
SHAPES = ("circle", "square", "triangle")


def _draw_shape(draw, shape: str, cx: float, cy: float, r: float, fill: tuple) -> None:
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)


def shape_image(rng: random.Random, size: int = 32):
    """Two coloured shapes side by side or one above the other, and the caption that says so:
    ``a red circle left of a blue square``, ``a green triangle above a yellow circle`` (the
    first shape named is the left or upper one, so the caption is a function of the image).
    Drawn at 4x and scaled down (smooth edges); returns (PIL RGB image, caption)."""
    from PIL import Image, ImageDraw

    big = 4 * size
    img = Image.new("RGB", (big, big), "white")
    draw = ImageDraw.Draw(img)
    across = rng.random() < 0.5
    a, b = rng.uniform(0.2, 0.38) * big, rng.uniform(0.62, 0.8) * big  # along the relation
    c = rng.uniform(0.3, 0.7) * big  # across it: nearly level, so the relation is clear
    d = c + rng.uniform(-0.12, 0.12) * big
    words = []
    for along, side in ((a, c), (b, d)):
        colour, shape = rng.choice(sorted(COLOURS)), rng.choice(SHAPES)
        x, y = (along, side) if across else (side, along)
        _draw_shape(draw, shape, x, y, rng.uniform(0.12, 0.17) * big, COLOURS[colour])
        words.append(f"a {colour} {shape}")
    caption = f"{words[0]} {'left of' if across else 'above'} {words[1]}"
    return img.resize((size, size), Image.Resampling.LANCZOS), caption


def write_shapes(out_dir: str | Path, sizes: dict[str, int], seed: int = 1,
                 image_size: int = 32) -> Path:
    """The image captioning task: ``<out_dir>/images/<split>-<i>.png`` (:func:`shape_image`),
    ``<split>.src`` listing them (paths relative to out_dir) and ``<split>.tgt`` the captions."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    for k, (split, size) in enumerate(sizes.items()):
        rng = random.Random(seed * 1000 + k)
        paths, captions = [], []
        for i in range(size):
            img, caption = shape_image(rng, image_size)
            paths.append(f"images/{split}-{i:05d}.png")
            img.save(out / paths[-1])
            captions.append(caption)
        for name, lines in (("src", paths), ("tgt", captions)):
            (out / f"{split}.{name}").write_text("".join(ln + "\n" for ln in lines),
                                                 encoding="utf-8")
    return out


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
    p.add_argument("task", choices=sorted([*TASKS, "shapes"]))
    p.add_argument("out_dir")
    p.add_argument("--train", type=int, default=20000)
    p.add_argument("--dev", type=int, default=500)
    p.add_argument("--test", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--vocab", type=int, default=None, help="reverse: number of symbols")
    p.add_argument("--max-len", type=int, default=None, help="reverse: longest sequence")
    a = p.parse_args()
    sizes = {"train": a.train, "dev": a.dev, "test": a.test}
    extra = {k: v for k, v in (("vocab", a.vocab), ("max_len", a.max_len)) if v is not None}
    out = write_shapes(a.out_dir, sizes, a.seed) if a.task == "shapes" else \
        write_task(a.task, a.out_dir, sizes, seed=a.seed, **extra)
    print(f"wrote {a.task} train/dev/test ({a.train}/{a.dev}/{a.test} pairs) to {out}")


if __name__ == "__main__":
    main()
