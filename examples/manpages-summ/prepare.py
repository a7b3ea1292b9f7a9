"""Man-page summarization: DESCRIPTION section (source) → the NAME line's one-line summary (target).

The pages come from a fixed list of Debian packages (:data:`PACKAGES`), so the corpus is the same
on every machine whatever else is installed.  Each page is rendered with ``mandoc -T utf8``, which
reads both man(7) and mdoc(7) sources in milliseconds; the rendered text is split into sections at
the lines that start in column 0::

    NAME
           malloc, free, calloc, realloc - allocate and free dynamic memory
    ...
    DESCRIPTION
           The malloc() function allocates size bytes and ...

``.so`` redirections and symlinks (aliases of another page) are skipped, so each page counts once.
"""
from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from prepare_utils import Pair, build, cli, held_out_size, normalize_space, truncate_words  # noqa: E402

PACKAGES = [
    "manpages", "manpages-dev",              # Linux man-pages: system calls, libc, files, overviews
    "git-man", "perl-doc", "erlang-manpages",
    "tcl8.6-doc", "tk8.6-doc", "tcllib",
    "libssl-doc", "libcurl4-doc", "libx11-doc", "ncurses-doc", "openmpi-doc",
    "libbsd-dev", "libzip-dev", "liburing-dev", "libpcap0.8-dev", "netpbm",
]
SRC_LANG, TGT_LANG = "desc", "summary"  # file suffixes: train.desc, train.summary
MAX_SOURCE_WORDS = 120  # the gist is up front; an RNN encoder pays for every token
MIN_SOURCE_WORDS = 8
MAN_DIR_RE = re.compile(r"^/usr/share/man/man[^/]+/[^/]+$")  # English pages only, no locale dirs
NAME_RE = re.compile(r"^(?P<names>.+?)\s+[-\u2010\u2013\u2014\u2212]\s+(?P<summary>.+)$")
OVERSTRIKE_RE = re.compile(".\b")  # bold (x\bx) and underline (_\bx) in terminal output
BOX_RE = re.compile("[\u2500-\u257f]")  # table rules drawn by tbl; the cell text is kept


def man_pages(packages: list[str]) -> list[Path]:
    """The man page files of ``packages``: regular files only (symlinks are aliases), sorted."""
    out = subprocess.run(["dpkg", "-L", *packages], capture_output=True, text=True).stdout
    paths = {Path(p) for p in out.splitlines() if MAN_DIR_RE.match(p)}
    return sorted(p for p in paths if p.is_file() and not p.is_symlink())


def render_man(path: Path) -> str:
    """Plain text of a man page, or "" for a ``.so`` redirection to another page."""
    with (gzip.open(path) if path.suffix == ".gz" else open(path, "rb")) as f:
        head = f.read(4)
    if head == b".so ":
        return ""
    out = subprocess.run(["mandoc", "-T", "utf8", "-O", "width=1000", str(path)], capture_output=True).stdout
    return clean_rendered(out.decode("utf-8", errors="replace"))


def clean_rendered(text: str) -> str:
    """Terminal output of mandoc as plain text: no overstrike, no table rules."""
    return BOX_RE.sub(" ", OVERSTRIKE_RE.sub("", text))


def sections(rendered: str) -> dict[str, str]:
    """Section title (a line starting in column 0) → its body with whitespace collapsed."""
    body: dict[str, list[str]] = {}
    current = None
    for line in rendered.split("\n"):
        if line[:1].strip():
            current = line.strip()
            body.setdefault(current, [])
        elif current is not None:
            body[current].append(line)
    return {title: normalize_space(" ".join(lines)) for title, lines in body.items()}


def is_english(text: str) -> bool:
    """At least 80% of the letters are ASCII (a few pages are translations, e.g. perlcn)."""
    letters = [ch for ch in text if ch.isalpha()]
    return sum(ch.isascii() for ch in letters) >= 0.8 * len(letters)


def parse_man(rendered: str) -> tuple[str, str] | None:
    """(DESCRIPTION text truncated to MAX_SOURCE_WORDS, NAME summary), or None if either is
    missing, the description is shorter than MIN_SOURCE_WORDS or not in English."""
    secs = sections(rendered)
    m = NAME_RE.match(secs.get("NAME", ""))
    description = secs.get("DESCRIPTION", "")
    if m is None or len(description.split()) < MIN_SOURCE_WORDS or not is_english(description):
        return None
    return truncate_words(description, MAX_SOURCE_WORDS), m["summary"]


def page_key(path: Path) -> str:
    """Stable name of a page for the split hash: "malloc.3" for .../man3/malloc.3.gz."""
    return path.name.removesuffix(".gz")


def collect() -> list[Pair]:
    if shutil.which("mandoc") is None:
        raise SystemExit("error: mandoc is not installed (apt-get install mandoc)")
    paths = man_pages(PACKAGES)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        rendered = list(pool.map(render_man, paths))
    pairs = []
    for path, text in zip(paths, rendered, strict=True):
        parsed = parse_man(text) if text else None
        if parsed:
            pairs.append(Pair(page_key(path), *parsed))
    print(f"{len(paths)} man page files in {len(PACKAGES)} packages, "
          f"{sum(1 for t in rendered if not t)} .so redirections, {len(pairs)} with NAME and DESCRIPTION")
    return pairs


def main() -> None:
    args = cli(__doc__.splitlines()[0])
    size = lambda n: (held_out_size(n, 0.1, 1000),) * 2  # noqa: E731
    build(collect, args.out, SRC_LANG, TGT_LANG, seed=args.seed, force=args.force, dev_test=size)


if __name__ == "__main__":
    main()
