"""Spanish→English Bible: verse-aligned pairs from two SWORD modules read with ``diatheke``.

Sources (Debian): ``sword-text-sparv`` (module ``spaRV1909eb``, Reina-Valera 1909) and
``sword-text-web`` (module ``engWEB2015eb``, World English Bible).  ``diatheke -b MODULE -k
Gen-Rev`` prints the whole module in its native OSIS markup, one verse per line::

    Genesis 1:1: <w savlm="strong:H7225">EN el principio</w> <w ...>crió</w> ...

Two quirks of that output are handled here:

* text before the reference is the verse's pre-verse heading (e.g. a psalm title), but diatheke
  repeats the last heading on every following line until a new one appears, so a heading counts
  only where it differs from the previous line's;
* the WEB sometimes writes adjacent words with no space between their ``<w>`` tags.

Psalm titles are verse text in the Reina-Valera (part of verse 1), so the WEB's canonical psalm
titles are put in front of verse 1 too; non-canonical headings, notes and the glossary are dropped.

Both modules follow the English verse numbering, but in a few chapters the Reina-Valera text is
one verse off (e.g. Numbers 13, Jonah 2: the Hebrew numbering); :func:`shifted_chapters` finds
them by comparing lengths and shared names/numbers of verse pairs, and they are left out.
"""
from __future__ import annotations

import html
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from prepare_utils import Pair, build, cli, normalize_space  # noqa: E402

SRC_MODULE, TGT_MODULE = "spaRV1909eb", "engWEB2015eb"
SRC_LANG, TGT_LANG = "es", "en"

# "Genesis 1:1: ", "I Samuel 2:3: ", "Esther (Greek) 1:1: ", "Revelation of John 22:21: "
REF_RE = re.compile(r"(?<![^\s>])(?P<book>[1-4I]*\s?[A-Z][^:<>\d]*?) (?P<chapter>\d+):(?P<verse>\d+): ")
TITLE_RE = re.compile(r"<title\b([^>]*)>(.*?)</title>", re.S)
# elements dropped with their content: notes, speaker labels, non-canonical headings
DROP_RE = re.compile(r"<(note|speaker)\b[^>]*>.*?</\1>|<title\b(?![^>]*canonical=\"true\")[^>]*>.*?</title>",
                     re.S)
# the WEB's glossary and introduction, delimited by <div sID="X" .../> ... <div eID="X" .../>
DROP_DIV_RE = re.compile(r"<div\b(?=[^>]*\btype=\"(?:glossary|introduction)\")[^>]*\bsID=\"([^\"]+)\"[^>]*/>"
                         r".*?(?:<div\b[^>]*\beID=\"\1\"[^>]*/>|$)", re.S)
# inline elements written back to back although they hold separate words
GLUED_RE = re.compile(r"(</(?:w|transChange)>)(?=<(?:w|transChange)\b)")
# elements that separate text (lines, paragraphs, list items) become a space; others vanish
BLOCK_TAG_RE = re.compile(r"</?(?:l|lg|lb|p|div|list|item|chapter|milestone|title)\b[^>]*>")
TAG_RE = re.compile(r"<[^>]*>")


def clean_osis(markup: str) -> str:
    """Plain text of one verse of OSIS markup: no tags, notes, Strong's numbers or headings."""
    text = DROP_DIV_RE.sub(" ", markup)
    text = DROP_RE.sub("", text)
    text = GLUED_RE.sub(r"\1 ", text)
    text = BLOCK_TAG_RE.sub(" ", text)
    text = TAG_RE.sub("", text)
    return normalize_space(html.unescape(text))


def parse_diatheke(output: str, module: str) -> dict[str, str]:
    """Map "Book chapter:verse" to clean verse text, in the order diatheke printed them.

    A line without a reference continues the previous verse; the closing ``(module)`` line
    is ignored.  A canonical title in a *new* pre-verse heading is prepended to that verse.
    """
    verses: dict[str, str] = {}
    last_heading = None
    ref = None
    for line in output.split("\n"):
        if line.strip() in ("", f"({module})"):
            continue
        m = REF_RE.search(line)
        if m is None:
            if ref is not None:
                verses[ref] += " " + line
            continue
        ref = f"{m['book'].strip()} {m['chapter']}:{m['verse']}"
        heading, body = line[:m.start()], line[m.end():]
        titles = ""
        if heading.strip() and heading != last_heading:
            titles = " ".join(t for attrs, t in TITLE_RE.findall(heading) if 'canonical="true"' in attrs)
        last_heading = heading
        verses[ref] = (titles + " " + body) if titles else body
    return {r: clean_osis(markup) for r, markup in verses.items()}


def align(src: dict[str, str], tgt: dict[str, str]) -> list[Pair]:
    """Pairs for the references present and non-empty in both texts, in source order."""
    return [Pair(ref, s, tgt[ref]) for ref, s in src.items() if s and tgt.get(ref)]


def chapter_of(ref: str) -> str:
    """ "I Samuel 24:3" -> "I Samuel 24"."""
    return ref.rsplit(":", 1)[0]


def _mismatch(a: str, b: str) -> float:
    """How unlike two verses look: |log length ratio| minus the overlap of names and numbers."""
    def anchors(text: str) -> set[str]:
        names = {w[:4].lower() for w in re.findall(r"\b[A-Z][^\W\d_]{3,}", text)}
        return names | set(re.findall(r"\d+", text))
    len_a, len_b = len(a.split()) + 1, len(b.split()) + 1
    x, y = anchors(a), anchors(b)
    return abs(math.log(len_a / len_b)) - (len(x & y) / len(x | y) if x | y else 0.0)


def shifted_chapters(src: dict[str, str], tgt: dict[str, str], margin: float = 0.15) -> set[str]:
    """Chapters whose source verses match the target better one verse earlier or later."""
    verses: dict[str, list[tuple[int, str]]] = {}
    for ref, text in src.items():
        if text:
            verses.setdefault(chapter_of(ref), []).append((int(ref.rsplit(":", 1)[1]), text))
    shifted = set()
    for chapter, items in verses.items():
        cost = {}
        for offset in (-1, 0, 1):
            costs = [_mismatch(text, tgt[f"{chapter}:{v + offset}"]) for v, text in items
                     if tgt.get(f"{chapter}:{v + offset}")]
            cost[offset] = sum(costs) / len(costs) if costs else math.inf
        if min(cost[-1], cost[1]) < cost[0] - margin:
            shifted.add(chapter)
    return shifted


def dump_module(module: str, cache_dir: Path) -> str:
    """The whole module as printed by diatheke (kept in ``cache_dir`` for inspection)."""
    if shutil.which("diatheke") is None:
        raise SystemExit("error: diatheke is not installed (apt-get install diatheke)")
    out = subprocess.run(["diatheke", "-b", module, "-k", "Gen-Rev"], check=True,
                         capture_output=True, text=True, encoding="utf-8").stdout
    if f"({module})" not in out:
        raise SystemExit(f"error: diatheke printed nothing for module {module}; is it installed?")
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / f"{module}.txt").write_text(out, encoding="utf-8")
    return out


def collect(out_dir: Path) -> list[Pair]:
    raw = out_dir / "raw"
    src = parse_diatheke(dump_module(SRC_MODULE, raw), SRC_MODULE)
    tgt = parse_diatheke(dump_module(TGT_MODULE, raw), TGT_MODULE)
    pairs = align(src, tgt)
    shifted = shifted_chapters(src, tgt)
    kept = [p for p in pairs if chapter_of(p.key) not in shifted]
    print(f"{SRC_MODULE}: {len(src)} verses, {TGT_MODULE}: {len(tgt)} verses, {len(pairs)} aligned "
          f"non-empty pairs; {len(pairs) - len(kept)} dropped from misnumbered chapters "
          f"({', '.join(sorted(shifted)) or 'none'})")
    return kept


def main() -> None:
    args = cli(__doc__.splitlines()[0])
    build(lambda: collect(args.out), args.out, SRC_LANG, TGT_LANG, seed=args.seed, force=args.force,
          dev_test=lambda n: (1000, 1000))


if __name__ == "__main__":
    main()
