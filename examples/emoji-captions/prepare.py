"""Emoji images captioned with their official Unicode (CLDR) names, in four rendering styles.

Sources (all installed by ``prepare.sh``; versions pinned in ``NPM``):

* Debian ``unicode-data``: ``emoji-test.txt``, the fully-qualified emoji and their CLDR names
  (the captions);
* Debian ``fonts-noto-color-emoji``: style ``noto``, the font rendered by Pillow;
* npm ``emoji-datasource-google``: style ``google``, 64 px PNGs (Noto artwork of another release)
  and, in ``emoji.json``, the Unicode character names and short names (extra references);
* npm ``openmoji``: style ``openmoji``, SVGs rasterized by CairoSVG;
* npm ``emoji-datasource-twitter``: style ``twitter`` (Twemoji), 64 px PNGs.

Every image is cropped to its content, centred on a white square and scaled to ``SIZE`` pixels.
The splits (:func:`assign`) and the leak check (:func:`check`) are described in README.md.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import re
import sys
import tarfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from prepare_utils import split_hash  # noqa: E402

EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
NOTO_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
NPM = {"google": "emoji-datasource-google@16.0.0", "twitter": "emoji-datasource-twitter@16.0.0",
       "openmoji": "openmoji@17.0.0"}
TRAIN_STYLES = ("noto", "google", "openmoji")
TEST_STYLE = "twitter"
STYLES = (*TRAIN_STYLES, TEST_STYLE)
SIZE = 64  # pixels per side of every written image
N_TEST, N_DEV, N_STYLE = 300, 150, 1000  # emoji in test_compositional and dev; test_style images
SPLITS = ("train", "dev", "test_compositional", "test_style")
MAX_REFS = 4
LINE_RE = re.compile(r"^([0-9A-F ]+?)\s*;\s*fully-qualified\s*#\s*\S+\s+E\d+\.\d+\s+(.+)$")


class Emoji(NamedTuple):
    """One fully-qualified emoji: code points as in emoji-test.txt (``1F469 200D 2695 FE0F``)."""

    codepoints: str
    name: str

    @property
    def text(self) -> str:
        return "".join(chr(int(c, 16)) for c in self.codepoints.split())

    @property
    def key(self) -> str:
        """The code points without U+FE0F, lowercase, joined by '-': how images are matched."""
        return "-".join(c.lower() for c in self.codepoints.split() if c != "FE0F")

    @property
    def file(self) -> str:
        return "-".join(c.lower() for c in self.codepoints.split()) + ".png"


def parse_emoji_test(text: str) -> list[Emoji]:
    """The fully-qualified emoji of emoji-test.txt, in file (CLDR) order."""
    return [Emoji(m[1], m[2].strip()) for line in text.splitlines() if (m := LINE_RE.match(line))]


def parts(name: str) -> list[str]:
    """A CLDR name's parts: the base before ': ' and each attribute after it, split on ', '
    (``kiss: woman, man, dark skin tone`` -> kiss, woman, man, dark skin tone)."""
    base, _, rest = name.partition(": ")
    return [base, *(rest.split(", ") if rest else [])]


def assign(emoji: list[Emoji], seed: int) -> dict[str, str]:
    """Emoji name -> ``train``, ``dev`` or ``test_compositional``.

    Candidates are emoji with at least one attribute, taken in the order of a seeded hash of
    their code points; one is held out only if every part of its name and every word of it
    still occurs in an emoji left in training. The first ``N_TEST`` held out form the
    compositional test, the next ``N_DEV`` dev.
    """
    part_count = Counter(p for e in emoji for p in set(parts(e.name)))
    word_count = Counter(w for e in emoji for w in set(e.name.split()))
    where = {e.name: "train" for e in emoji}
    held = 0
    for e in sorted(emoji, key=lambda e: split_hash(e.codepoints, seed)):
        if held == N_TEST + N_DEV:
            break
        own_parts, own_words = set(parts(e.name)), set(e.name.split())
        if len(own_parts) < 2 or any(part_count[p] < 2 for p in own_parts) \
                or any(word_count[w] < 2 for w in own_words):
            continue
        part_count.subtract(own_parts)
        word_count.subtract(own_words)
        where[e.name] = "test_compositional" if held < N_TEST else "dev"
        held += 1
    return where


def normalize(image, size: int = SIZE):
    """RGBA image -> its content cropped, centred on a white square, scaled to ``size``, RGB."""
    from PIL import Image

    image = image.convert("RGBA")
    box = image.getchannel("A").getbbox()
    if box:
        image = image.crop(box)
    side = max(image.size)
    square = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    square.alpha_composite(image, ((side - image.width) // 2, (side - image.height) // 2))
    return square.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)


def render_noto(emoji: Emoji, font):
    """The emoji drawn with the Noto Color Emoji font, or None where it is not one glyph
    (a sequence the font does not ligate comes out several glyphs wide)."""
    from PIL import Image, ImageDraw

    left, top, right, bottom = font.getbbox(emoji.text)
    if right - left > 1.5 * font.size or bottom - top <= 0:
        return None
    image = Image.new("RGBA", (right + 8, bottom + 8), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((0, 0), emoji.text, font=font, embedded_color=True)
    return image


def npm_images(tgz: Path, style: str) -> Iterator[tuple[str, object]]:
    """(key, RGBA image) of every image in an npm package: the 64 px PNGs of emoji-datasource
    or OpenMoji's colour SVGs (rasterized at 144 px; None where CairoSVG cannot draw one)."""
    from PIL import Image

    folder = "package/color/svg/" if style == "openmoji" else f"package/img/{style}/64/"
    with tarfile.open(tgz) as tar:
        for member in tar:
            if not member.isfile() or not member.name.startswith(folder):
                continue
            stem = member.name[len(folder):].rsplit(".", 1)[0].lower()
            key = "-".join(c for c in stem.split("-") if c != "fe0f")
            data = tar.extractfile(member).read()
            if style == "openmoji":
                import cairosvg

                try:
                    data = cairosvg.svg2png(bytestring=data, output_width=144, output_height=144)
                except Exception:  # noqa: BLE001  CairoSVG fails in assorted ways on a few files
                    yield key, None
                    continue
            yield key, Image.open(io.BytesIO(data))


def datasource_names(tgz: Path) -> dict[str, list[str]]:
    """Key -> alternative captions from emoji-datasource's ``emoji.json``: the Unicode character
    name (lowercased where it is all capitals) and the short names of at least two words, with
    '_' and '-' read as spaces (flags' short names are codes and left out). Skin-tone variants
    share their base's names; :func:`references` appends the tones."""
    import json

    with tarfile.open(tgz) as tar:
        entries = json.load(tar.extractfile("package/emoji.json"))
    out = {}
    for e in entries:
        name = e["name"].lower() if e["name"].isupper() else e["name"]
        shorts = [s.replace("_", " ").replace("-", " ") for s in e["short_names"]]
        names = [name, *(s for s in shorts if len(s.split()) > 1 and s.replace(" ", "").isalpha()
                         and not e["short_name"].startswith("flag-"))]
        for unified in [e["unified"], *(e.get("skin_variations") or {}).values()]:
            code = unified if isinstance(unified, str) else unified["unified"]
            out["-".join(c for c in code.lower().split("-") if c != "fe0f")] = names
    return out


def references(emoji: Emoji, alternatives: dict[str, list[str]]) -> list[str]:
    """The CLDR name first, then up to ``MAX_REFS - 1`` distinct alternatives, each followed by
    the name's skin tones (``: medium skin tone``) where it has them."""
    tones = [p for p in parts(emoji.name)[1:] if p.endswith("skin tone")]
    refs = [emoji.name]
    for alt in alternatives.get(emoji.key, []):
        alt = f"{alt}: {', '.join(tones)}" if tones else alt
        if alt.lower() not in (r.lower() for r in refs) and len(refs) < MAX_REFS:
            refs.append(alt)
    return refs


def collect(out: Path, npm_dir: Path, emoji: list[Emoji]) -> dict[str, set[str]]:
    """Write ``out/images/<style>/<emoji>.png``; returns the emoji names each style has.

    Images that are pixel-identical to another emoji's in the same style (OpenMoji draws some
    "man ..." and "person ..." alike; two flags are the same) are ambiguous: left out."""
    from PIL import ImageFont

    by_key = {e.key: e for e in emoji}
    have: dict[str, set[str]] = {}
    font = ImageFont.truetype(str(NOTO_FONT), 109)
    for style in STYLES:
        folder = out / "images" / style
        folder.mkdir(parents=True, exist_ok=True)
        if style == "noto":
            images = ((e.key, render_noto(e, font)) for e in emoji)
        else:
            images = npm_images(npm_dir / npm_tarball(NPM[style]), style)
        names_by_pixels: dict[bytes, list[str]] = {}
        for key, image in images:
            if key in by_key and image is not None:
                e, image = by_key[key], normalize(image)
                names = names_by_pixels.setdefault(image.tobytes(), [])
                if e.name not in names:
                    names.append(e.name)
                    image.save(folder / e.file, optimize=True)
        have[style] = {n[0] for n in names_by_pixels.values() if len(n) == 1}
        print(f"{style}: {len(have[style])} of {len(emoji)} emoji "
              f"({sum(len(n) for n in names_by_pixels.values() if len(n) > 1)} ambiguous left out)")
    return have


def npm_tarball(spec: str) -> str:
    """The file ``npm pack`` writes for a spec: ``openmoji@17.0.0`` -> openmoji-17.0.0.tgz."""
    name, version = spec.rsplit("@", 1)
    return f"{name}-{version}.tgz"


def build_splits(emoji: list[Emoji], have: dict[str, set[str]], seed: int
                 ) -> dict[str, list[tuple[Emoji, str]]]:
    """(emoji, style) pairs per split: train and dev in ``TRAIN_STYLES``; the compositional
    test in them too; the style test a seeded sample of ``TEST_STYLE`` images of train emoji."""
    where = assign(emoji, seed)
    splits: dict[str, list[tuple[Emoji, str]]] = {s: [] for s in SPLITS}
    for e in emoji:
        splits[where[e.name]].extend((e, s) for s in TRAIN_STYLES if e.name in have[s])
    style = [e for e in emoji if where[e.name] == "train" and e.name in have[TEST_STYLE]]
    style.sort(key=lambda e: split_hash(e.codepoints + "/style", seed))
    chosen = {e.name for e in style[:N_STYLE]}
    splits["test_style"] = [(e, TEST_STYLE) for e in emoji if e.name in chosen]
    return splits


def write(out: Path, splits: dict[str, list[tuple[Emoji, str]]],
          alternatives: dict[str, list[str]]) -> None:
    """``<split>.src`` (image paths relative to ``out``) and ``<split>.tgt`` (the CLDR name);
    the test splits also get ``<split>.ref2`` .. ``.ref<MAX_REFS>`` (empty line: none).
    Images in no split are deleted."""
    used = {out / "images" / s / e.file for pairs in splits.values() for e, s in pairs}
    for path in (out / "images").rglob("*.png"):
        if path not in used:
            path.unlink()
    for split, pairs in splits.items():
        (out / f"{split}.src").write_text("".join(f"images/{s}/{e.file}\n" for e, s in pairs))
        refs = [references(e, alternatives) for e, _ in pairs]
        (out / f"{split}.tgt").write_text("".join(r[0] + "\n" for r in refs), encoding="utf-8")
        if split.startswith("test"):
            for k in range(1, MAX_REFS):
                (out / f"{split}.ref{k + 1}").write_text(
                    "".join((r[k] if k < len(r) else "") + "\n" for r in refs), encoding="utf-8")


def read_split(out: Path, split: str) -> tuple[list[str], list[str]]:
    """The image paths and captions of a written split."""
    src = (out / f"{split}.src").read_text().splitlines()
    tgt = (out / f"{split}.tgt").read_text(encoding="utf-8").splitlines()
    assert len(src) == len(tgt), f"{split}: {len(src)} images but {len(tgt)} captions"
    return src, tgt


def check(out: Path) -> str:
    """The leak check of the written splits; raises AssertionError on a leak, else a summary.

    * no image path (emoji and style) is in two splits, and no held-out image has the pixels
      of a training image;
    * no emoji of dev or test_compositional is in train, in any style, and every part and every
      word of their captions occurs in a training caption;
    * no ``TEST_STYLE`` image is in train or dev, and test_style holds only training captions.
    """
    data = {s: read_split(out, s) for s in SPLITS}
    paths = {s: set(src) for s, (src, _) in data.items()}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1:]:
            assert not paths[a] & paths[b], f"{a} and {b} share {sorted(paths[a] & paths[b])[:3]}"
    train_src, train_tgt = data["train"]
    train_caps = set(train_tgt)
    train_parts = {p for c in train_caps for p in parts(c)}
    train_words = {w for c in train_caps for w in c.split()}
    for split in ("dev", "test_compositional"):
        for cap in data[split][1]:
            assert cap not in train_caps, f"{split}: {cap!r} is a training caption"
            missing = [p for p in parts(cap) if p not in train_parts]
            missing += [w for w in cap.split() if w not in train_words]
            assert not missing, f"{split}: {cap!r}: {missing} never occur in training"
    assert set(data["test_style"][1]) <= train_caps, "test_style: a caption not in training"
    for split in ("train", "dev"):
        assert not any(p.startswith(f"images/{TEST_STYLE}/") for p in data[split][0]), split
    pixels = {_pixel_hash(out / p) for p in train_src}
    for split in SPLITS[1:]:
        same = [p for p in data[split][0] if _pixel_hash(out / p) in pixels]
        assert not same, f"{split}: {same[:3]} have the pixels of a training image"
    return (f"leak check passed: {len(SPLITS)} splits share no (emoji, style) pair and no "
            f"pixel-identical image; dev/test_compositional emoji are absent from train and "
            f"their parts and words all occur there; no {TEST_STYLE} image in train or dev")


def _pixel_hash(path: Path) -> str:
    from PIL import Image

    with Image.open(path) as image:
        return hashlib.sha256(image.convert("RGB").tobytes()).hexdigest()


def stats(out: Path) -> str:
    """A table per split: images, distinct emoji, styles, mean caption words, caption vocabulary."""
    header = f"{'split':<19} {'images':>7} {'emoji':>6} {'words':>6} {'vocab':>6}  styles"
    rows = [header, "-" * (len(header) + 20)]
    for split in SPLITS:
        src, tgt = read_split(out, split)
        styles = Counter(p.split("/")[1] for p in src)
        words = sum(len(c.split()) for c in tgt) / max(1, len(tgt))
        vocab = len({w for c in tgt for w in c.split()})
        rows.append(f"{split:<19} {len(src):>7} {len(set(tgt)):>6} {words:>6.1f} {vocab:>6}  "
                    + " ".join(f"{s}:{n}" for s, n in sorted(styles.items())))
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (…/data)")
    parser.add_argument("--npm", type=Path, required=True, help="folder of the npm tarballs")
    parser.add_argument("--force", action="store_true", help="rebuild even if the files exist")
    parser.add_argument("--seed", type=int, default=1, help="seed of the split hash")
    args = parser.parse_args()
    if args.force or not all((args.out / f"{s}.tgt").is_file() for s in SPLITS):
        emoji = parse_emoji_test(EMOJI_TEST.read_text(encoding="utf-8"))
        assert len({e.name for e in emoji}) == len(emoji), "emoji names are not unique"
        have = collect(args.out, args.npm, emoji)
        alternatives = datasource_names(args.npm / npm_tarball(NPM["google"]))
        write(args.out, build_splits(emoji, have, args.seed), alternatives)
        print(f"wrote {args.out}/ from {len(emoji)} emoji")
    else:
        print(f"{args.out}/ is already prepared (use --force to rebuild)")
    print(stats(args.out))
    print(check(args.out))


if __name__ == "__main__":
    main()
