"""UI strings English → French: msgid → msgstr of the gettext ``.mo`` catalogs Debian packages ship.

The catalogs come from a fixed list of Debian packages (:data:`PACKAGES`: GNU tools, GCC, Git,
PostgreSQL, GTK, GIMP, VLC, GnuCash, Evolution, ...), read from
``/usr/share/locale/fr/LC_MESSAGES/*.mo`` as ``dpkg -L`` lists them, so the corpus does not depend
on what else is installed. ``--lang es`` reads the Spanish catalogs instead (the fine-tuning
example examples/finetune-ui-es-en uses them, as Spanish→English).  A ``.mo`` file is parsed
directly (:func:`read_mo`, the format is a header and two offset tables); no gettext tool is needed.

Each translated message gives one pair: the singular msgid (a message context is dropped; a plural
entry contributes its singular and its first plural form) and its translation.  Whitespace is
collapsed, a single keyboard mnemonic (``_File``, ``&File``) is removed on each side, and pairs whose
source has fewer than two letters (``%s: %s``) or more than :data:`MAX_WORDS` words are dropped.
The split key is the source string itself, so a string that several catalogs translate differently
stays in train (see ``prepare_utils.split_pairs``) and no test source occurs in training.
"""
from __future__ import annotations

import re
import struct
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from prepare_utils import Pair, build, cli, held_out_size, normalize_space  # noqa: E402

PACKAGES = [
    # in the base image
    "coreutils", "findutils", "grep", "sed", "tar", "diffutils", "make", "bash", "gettext",
    "binutils-common", "libc-l10n", "git", "gnupg-l10n", "wget", "man-db", "dpkg", "apt",
    "libapt-pkg6.0", "systemd", "procps", "psmisc", "libglib2.0-data", "libgtk2.0-common",
    "postgresql-15", "postgresql-client-15",
    # installed by prepare.sh: translations-only packages with no further dependencies
    "gcc-12-locales", "util-linux-locales", "aptitude-common", "mc-data", "libgtk-3-common",
    "gnome-shell-common", "evolution-common", "gnucash-common", "audacity-data",
    "filezilla-common", "libsane-common", "vlc-l10n", "gimp-data",
]
SRC_LANG, TGT_LANG = "en", "fr"  # file suffixes: train.en, train.fr (--lang: another)
MAX_WORDS = 250  # a few messages are whole help pages
MO_MAGIC = 0x950412DE
CHARSET_RE = re.compile(r"charset=([-\w.]+)", re.I)
# a mnemonic marker: "_" (GTK) at the start of a word, or "&" (Qt, wxWidgets) before a letter
MNEMONIC_RE = re.compile(r"(?:^|(?<=[\s(\[\"'«]))_(?=[^\W\d_])|&(?=[^\W\d_])")


def read_mo(data: bytes) -> list[tuple[str, str]]:
    """(msgid, msgstr) of every entry of a GNU ``.mo`` file, header included, in file order.

    Both sides are decoded with the charset of the header (UTF-8 if none); a plural entry keeps its
    ``\\0``-separated forms and a context its ``\\x04`` separator."""
    if len(data) < 28:
        raise ValueError("not a .mo file: too short")
    magic = struct.unpack("<I", data[:4])[0]
    end = "<" if magic == MO_MAGIC else ">" if struct.unpack(">I", data[:4])[0] == MO_MAGIC else ""
    if not end:
        raise ValueError("not a .mo file: bad magic number")
    _, n, orig_at, trans_at = struct.unpack(end + "4I", data[4:20])

    def table(at: int) -> list[bytes]:
        out = []
        for k in range(n):
            length, offset = struct.unpack(end + "2I", data[at + 8 * k:at + 8 * k + 8])
            out.append(data[offset:offset + length])
        return out

    raw = list(zip(table(orig_at), table(trans_at), strict=True))
    charset = "utf-8"
    for msgid, msgstr in raw:
        if msgid == b"":
            m = CHARSET_RE.search(msgstr.decode("ascii", errors="replace"))
            if m and m[1].upper() != "CHARSET":
                charset = m[1]
    return [(i.decode(charset, errors="replace"), s.decode(charset, errors="replace"))
            for i, s in raw]


def strip_mnemonic(text: str) -> str:
    """Remove the keyboard-mnemonic marker when the string has exactly one ``_`` or ``&``
    (``_Open`` → ``Open``, ``Save &As`` → ``Save As``, ``E&xit`` → ``Exit``); leave everything
    else alone (``file_name``, ``Sa_ve`` — inside a word ``_`` is usually an identifier —,
    ``%s & %s``, ``__builtin_trap``)."""
    if text.count("_") + text.count("&") != 1 or "&amp;" in text:
        return text
    return MNEMONIC_RE.sub("", text, count=1)


def letters(text: str) -> int:
    """How many letters ``text`` has outside printf-style ``%`` directives."""
    return sum(ch.isalpha() for ch in re.sub(r"%[-#0 +'I]*[\d*]*(?:\.[\d*]+)?[hlLqjzt]*\w", "", text))


def message_pairs(entries: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Cleaned (English, translation) pairs of one catalog's entries: see the module docstring."""
    out = []
    for msgid, msgstr in entries:
        if not msgid or not msgstr:
            continue  # the header, or an untranslated entry
        msgid = msgid.split("\x04", 1)[-1]  # drop a message context
        ids, strs = msgid.split("\x00"), msgstr.split("\x00")
        for src, tgt in list(zip(ids, strs))[:2]:  # singular and first plural
            src, tgt = (strip_mnemonic(normalize_space(s)) for s in (src, tgt))
            if not tgt or letters(src) < 2 or len(src.split()) > MAX_WORDS:
                continue
            out.append((src, tgt))
    return out


def catalogs(packages: list[str], lang: str) -> list[Path]:
    """The ``.mo`` files of ``packages`` in language ``lang``, sorted."""
    mo_path = re.compile(rf"^/usr/share/locale/{re.escape(lang)}/LC_MESSAGES/[^/]+\.mo$")
    out = subprocess.run(["dpkg", "-L", *packages], capture_output=True, text=True).stdout
    return sorted({Path(p) for p in out.splitlines() if mo_path.match(p) and Path(p).is_file()})


def collect(lang: str) -> list[Pair]:
    paths = catalogs(PACKAGES, lang)
    pairs, entries = [], 0
    for path in paths:
        parsed = read_mo(path.read_bytes())
        entries += len(parsed)
        pairs += [Pair(src, src, tgt) for src, tgt in message_pairs(parsed)]
    print(f"{len(paths)} '{lang}' catalogs in {len(PACKAGES)} packages, {entries} entries, "
          f"{len(pairs)} usable pairs")
    return pairs


def main() -> None:
    args = cli(__doc__.splitlines()[0], lambda p: p.add_argument(
        "--lang", default=TGT_LANG, help=f"the catalogs' language (default {TGT_LANG})"))
    size = lambda n: (held_out_size(n, 0.05, 1000),) * 2  # noqa: E731
    build(lambda: collect(args.lang), args.out, SRC_LANG, args.lang, seed=args.seed,
          force=args.force, dev_test=size)


if __name__ == "__main__":
    main()
