"""Data preparation of examples/ (bible-es-en, manpages-summ, dialogue, gettext-en-fr, code-docstring,
typed-signatures) on small fixtures and inline data.

No Debian package, network or installed corpus is needed: the parsers are fed fixture files that
look like the real tools' output (see tests/fixtures/examples/README.md).
"""
from __future__ import annotations

import gzip
import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "examples"
sys.path.insert(0, str(EXAMPLES))

import prepare_utils as pu  # noqa: E402


def load(example: str, module: str = "prepare") -> ModuleType:
    """Import examples/<example>/<module>.py (the folder names are not Python identifiers)."""
    name = f"_example_{example.replace('-', '_')}_{module}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / example / f"{module}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[name] = mod
    return sys.modules[name]


# ---------------------------------------------------------------- shared helpers: text and splits

def test_normalize_space_keeps_one_line():
    assert pu.normalize_space("  a\tb\nc\r\nd\u2028e\u00a0f\x0bg \x00h\u200bi  ") == "a b c d e f g hi"


def test_dedup_drops_repeats_and_empty_sides():
    pairs = [pu.Pair("1", "a", "x"), pu.Pair("2", "a", "x"), pu.Pair("3", "a", "y"),
             pu.Pair("4", "", "z"), pu.Pair("5", "b", "")]
    assert [p.key for p in pu.dedup(pairs)] == ["1", "3"]


def random_corpus(n: int, seed: int) -> list[pu.Pair]:
    """Pairs with many repeated sources and targets, like verses such as "Yahweh said to Moses"."""
    rng = random.Random(seed)
    pairs = [pu.Pair(f"k{i}", f"s{rng.randrange(3 * n)}", f"t{rng.randrange(3 * n)}") for i in range(n)]
    return pu.dedup(pairs)


def test_split_has_no_leakage_and_exact_sizes():
    pairs = random_corpus(3000, seed=0)
    splits = pu.split_pairs(pairs, n_dev=200, n_test=300, seed=1)
    assert (len(splits["dev"]), len(splits["test"])) == (200, 300)
    assert sum(len(s) for s in splits.values()) == len(pairs)
    for side in ("src", "tgt"):
        sets = {name: {getattr(p, side) for p in split} for name, split in splits.items()}
        assert not sets["train"] & sets["dev"]
        assert not sets["train"] & sets["test"]
        assert not sets["dev"] & sets["test"]


def test_split_is_deterministic_and_independent_of_input_order():
    pairs = random_corpus(2000, seed=3)
    first = pu.split_pairs(pairs, 100, 100, seed=7)
    assert pu.split_pairs(pairs, 100, 100, seed=7) == first
    shuffled = pairs[:]
    random.Random(0).shuffle(shuffled)
    again = pu.split_pairs(shuffled, 100, 100, seed=7)
    for name in pu.SPLITS:
        assert {p.key for p in again[name]} == {p.key for p in first[name]}
    other = pu.split_pairs(pairs, 100, 100, seed=8)
    assert {p.key for p in other["test"]} != {p.key for p in first["test"]}


def test_split_keeps_input_order_and_runs_short_gracefully():
    pairs = [pu.Pair(str(i), f"s{i}", f"t{i}") for i in range(10)] + [pu.Pair("dup", "s0", "other")]
    splits = pu.split_pairs(pairs, n_dev=5, n_test=5, seed=1)
    assert len(splits["test"]) == 5 and len(splits["dev"]) == 4  # "0" and "dup" share a source
    for split in splits.values():
        assert split == sorted(split, key=pairs.index)
    assert {p.key for p in splits["train"]} == {"0", "dup"}


def test_held_out_size():
    assert pu.held_out_size(30816, 0.1, 1000) == 1000
    assert pu.held_out_size(5975, 0.1, 1000) == 598
    assert pu.held_out_size(1176, 0.1) == 118


def test_build_writes_files_prints_stats_and_is_idempotent(tmp_path, capsys):
    pairs = [pu.Pair(str(i), f"uno dos {i}", f"one, two {i}.") for i in range(20)]
    pairs.append(pu.Pair("20", "uno dos 0", "one, two 0."))  # an exact duplicate
    pu.build(lambda: pairs, tmp_path, "es", "en", seed=1, force=False, dev_test=lambda n: (2, 3))
    lines = {p.name: pu.read_lines(p) for p in pu.split_files(tmp_path, "es", "en")}
    assert [len(lines[f"{s}.es"]) for s in pu.SPLITS] == [15, 2, 3]
    assert all(len(lines[f"{s}.es"]) == len(lines[f"{s}.en"]) for s in pu.SPLITS)
    out = capsys.readouterr().out
    assert "wrote 20 unique pairs" in out
    assert out.splitlines()[-1].split() == ["all", "20", "3.0", "3.0", "22", "22"]

    def must_not_run() -> list[pu.Pair]:
        raise AssertionError("collect() ran although the data exists")
    pu.build(must_not_run, tmp_path, "es", "en", seed=1, force=False, dev_test=lambda n: (2, 3))
    assert "already prepared" in capsys.readouterr().out


# ---------------------------------------------------------------- bible-es-en: diatheke + OSIS

@pytest.fixture(scope="module")
def bible() -> tuple[ModuleType, dict[str, str], dict[str, str]]:
    mod = load("bible-es-en")
    es = mod.parse_diatheke((FIXTURES / "diatheke_spaRV1909eb.txt").read_text("utf-8"), "spaRV1909eb")
    en = mod.parse_diatheke((FIXTURES / "diatheke_engWEB2015eb.txt").read_text("utf-8"), "engWEB2015eb")
    return mod, es, en


def test_diatheke_references_and_continuation_lines(bible):
    _, es, en = bible
    assert list(es)[:3] == ["Genesis 1:1", "Genesis 1:2", "Genesis 2:12"]
    assert "Esther (Greek) 1:1" in en and "Song of Solomon 1:5" in en and "I Samuel 1:2" in es
    assert es["I Samuel 1:2"] == ""
    assert es["Revelation of John 22:20"] == ("El que da testimonio de estas cosas, dice: Ciertamente, "
                                              "vengo en breve. Amén, sea así. Ven: Señor Jesús.")


def test_osis_markup_is_cleaned(bible):
    _, es, en = bible
    assert es["Genesis 1:1"] == "EN el principio crió Dios los cielos y la tierra."
    assert en["Genesis 1:1"] == "In the beginning, God created the heavens and the earth."  # glued <w>
    assert es["Genesis 2:12"] == ("Y el oro de aquella tierra es bueno: hay allí también bdelio y "
                                  "piedra cornerina.")  # glued <transChange>
    assert en["Genesis 1:2"] == "The earth was formless and empty. Darkness was on the surface of the deep."
    assert en["Song of Solomon 1:5"].startswith("I am dark, but lovely")  # speaker label dropped
    assert en["Revelation of John 22:21"] == ("The grace of the Lord Jesus Christ be with all the "
                                              "saints. Amen.")  # glossary dropped
    assert not any("<" in t or ">" in t or "  " in t for t in [*es.values(), *en.values()])


def test_only_new_psalm_titles_are_kept(bible):
    _, _, en = bible
    assert en["Psalms 3:1"] == ("A Psalm by David, when he fled from Absalom his son. Yahweh, how my "
                                "adversaries have increased! Many are those who rise up against me.")
    assert en["Psalms 3:2"].startswith("Many there are")  # the repeated (stale) title is ignored
    assert en["Psalms 4:1"].startswith("For the Chief Musician; on stringed instruments. "
                                       "A Psalm by David. Answer me")
    assert en["I Samuel 1:1"].startswith("Now there was")


def test_verse_alignment(bible):
    mod, es, en = bible
    pairs = mod.align(es, en)
    keys = [p.key for p in pairs]
    assert keys[:3] == ["Genesis 1:1", "Genesis 1:2", "Genesis 2:12"]
    assert "I Samuel 1:2" not in keys  # empty in Spanish
    assert "Esther (Greek) 1:1" not in keys  # only in the English module
    assert len(keys) == 10
    assert pairs[keys.index("Psalms 3:1")].src.startswith("Salmo de David")


def test_shifted_chapters_are_detected():
    mod = load("bible-es-en")
    names = ["Moses", "Aaron", "Israel", "Hazeroth", "Paran", "Canaan", "Joshua", "Caleb", "Hebron"]
    tgt = {f"Numbers {c}:{v}": f"{names[v % 9]} went {'far ' * (v * 3 % 11)}to {names[(v * 4) % 9]} {v * c}"
           for c in (13, 14) for v in range(1, 21)}
    src = {ref: text.replace("went", "fue") for ref, text in tgt.items()}
    for v in range(2, 21):  # Spanish chapter 13 is one verse off: its verse v is English verse v-1
        src[f"Numbers 13:{v}"] = tgt[f"Numbers 13:{v - 1}"].replace("went", "fue")
    assert mod.shifted_chapters(src, tgt) == {"Numbers 13"}
    assert mod.chapter_of("I Samuel 24:3") == "I Samuel 24"


# ---------------------------------------------------------------- manpages-summ: mandoc output

def test_man_page_name_and_description():
    mod = load("manpages-summ")
    text = mod.clean_rendered((FIXTURES / "frobnicate.3.rendered").read_text("utf-8"))
    assert "\b" not in text and "─" not in text
    assert mod.parse_man(text) == (
        "The frobnicate() function twiddles the bits of the widget pointed to by w; unfrobnicate() "
        "undoes it. The flags argument is one of: FROB_ON turn the widget on FROB_OFF turn the widget off",
        "twiddle the bits of a widget")


def test_man_page_rejects():
    mod = load("manpages-summ")
    body = "       " + " ".join(["word"] * 10)
    assert mod.parse_man(f"NAME\n       frob - do it\nDESCRIPTION\n{body}\n") is not None
    assert mod.parse_man(f"NAME\n       frob does it\nDESCRIPTION\n{body}\n") is None  # no dash
    assert mod.parse_man("NAME\n       frob - do it\nDESCRIPTION\n       too short\n") is None
    assert mod.parse_man(f"NAME\n       frob - do it\nSYNOPSIS\n{body}\n") is None
    chinese = "欢迎来到 Perl 的天地 " * 5
    assert mod.parse_man(f"NAME\n       perlcn - x\nDESCRIPTION\n       {chinese}\n") is None
    long = mod.parse_man("NAME\n       a - b\nDESCRIPTION\n       " + "w " * 1000)
    assert long is not None and len(long[0].split()) == mod.MAX_SOURCE_WORDS
    assert mod.page_key(Path("/usr/share/man/man3/malloc.3.gz")) == "malloc.3"


def test_man_so_redirection_is_skipped_without_mandoc(tmp_path):
    mod = load("manpages-summ")
    stub = tmp_path / "calloc.3.gz"
    stub.write_bytes(gzip.compress(b".so man3/malloc.3\n"))
    assert mod.render_man(stub) == ""


def test_lead_baseline():
    mod = load("manpages-summ", "lead_baseline")
    assert mod.lead("a b  c d", 2) == "a b"
    assert mod.median_length(["one", "one two", "one two three four"]) == 2
    # rouge() is not called here: importing rouge-score (nltk) alone takes about a second


# ---------------------------------------------------------------- dialogue: chatterbot YAML

def test_chatterbot_conversation_pairs():
    mod = load("dialogue")
    pairs = mod.conversation_pairs(FIXTURES / "chatterbot_music.yml")
    assert [(p.src, p.tgt) for p in pairs] == [
        ("Hello", "Hi there"),
        ("Do you like music?", "yes"),  # stays a string under BaseLoader
        ("yes", "What kind?"),
        ("What kind?", "Mostly jazz, some blues."),
        ("Hello", "Hi there"),
        ("2001", "A space odyssey."),
    ]
    assert pairs[0].key == "chatterbot_music:0:0" and pairs[3].key == "chatterbot_music:1:2"
    assert len(pu.dedup(pairs)) == 5


# ---------------------------------------------------------------- configs and git-ignore

@pytest.mark.parametrize("example", ["bible-es-en", "manpages-summ", "dialogue", "gettext-en-fr",
                                     "code-docstring", "typed-signatures"])
def test_example_config_matches_its_data(example):
    raw = yaml.safe_load((EXAMPLES / example / "config.yaml").read_text("utf-8"))
    mod = load(example)
    data = raw["data"]
    assert (data["src_lang"], data["tgt_lang"]) == (mod.SRC_LANG, mod.TGT_LANG)
    for split in pu.SPLITS:
        assert data[split] == f"examples/{example}/data/{split}"
    assert raw["name"] == example and raw["model_dir"] == f"runs/{example}"
    config = pytest.importorskip("transduce.config")
    config.load_config(EXAMPLES / example / "config.yaml")  # the core's schema accepts it


def test_finetune_example_fits_its_parent():
    """examples/finetune-ui-es-en: both fine-tuning configs keep what fine-tuning must keep of
    parent.yaml (network, tokenization: training/start.py's check), read the Spanish catalogs
    as Spanish→English, and start from parent.yaml's model_dir; mixed.yaml adds the parent's
    corpus at half weight."""
    config = pytest.importorskip("transduce.config")
    state = pytest.importorskip("transduce.training.state")
    here = EXAMPLES / "finetune-ui-es-en"
    parent, child, mixed = (config.load_config(here / f)
                            for f in ("parent.yaml", "config.yaml", "mixed.yaml"))
    for run in (child, mixed):
        assert state.first_difference(parent.to_dict(), run.to_dict(),
                                      state.SAME_ON_RESUME) is None
        assert run.training.init_from == parent.model_dir
        assert (run.data.src_lang, run.data.tgt_lang) == ("es", "en")
    assert "--lang es" in (here / "prepare.sh").read_text("utf-8")
    assert child.data.train == "examples/finetune-ui-es-en/data/train"
    # mixed.yaml: the same UI strings plus the parent's own corpus at a lower weight
    assert [(c.path, c.weight) for c in mixed.data.train] == [
        (child.data.train, 1), (parent.data.train, 0.5)]
    assert mixed.model_dir != child.model_dir


def test_data_folders_are_git_ignored():
    assert "*/data/" in (EXAMPLES / ".gitignore").read_text("utf-8").split()


# ---------------------------------------------------------------- gettext-en-fr: .mo catalogs

def make_mo(entries: list[tuple[str, str]], big_endian: bool = False, charset: str = "UTF-8") -> bytes:
    """A GNU .mo file (as msgfmt writes it, without the hash table) holding ``entries``."""
    import struct

    end = ">" if big_endian else "<"
    entries = [("", f"Content-Type: text/plain; charset={charset}\n"), *entries]
    ids = [i.encode(charset) for i, _ in entries]
    strs = [s.encode(charset) for _, s in entries]
    n = len(entries)
    orig_at, trans_at = 28, 28 + 8 * n
    data_at = trans_at + 8 * n
    blob, orig, trans = b"", [], []
    for raw, table in [(r, orig) for r in ids] + [(r, trans) for r in strs]:
        table.append((len(raw), data_at + len(blob)))
        blob += raw + b"\0"
    header = struct.pack(end + "7I", 0x950412DE, 0, n, orig_at, trans_at, 0, data_at)
    tables = b"".join(struct.pack(end + "2I", *e) for e in orig + trans)
    return header + tables + blob


def test_read_mo_both_byte_orders_and_charsets():
    mod = load("gettext-en-fr")
    entries = [("Open file", "Ouvrir le fichier"), ("menu\x04_Quit", "_Quitter"),
               ("%d file\x00%d files", "%d fichier\x00%d fichiers")]
    for big in (False, True):
        parsed = mod.read_mo(make_mo(entries, big_endian=big))
        assert parsed[0][0] == "" and parsed[1:] == entries
    latin = mod.read_mo(make_mo([("Delete", "Effacé")], charset="ISO-8859-1"))
    assert latin[1] == ("Delete", "Effacé")
    with pytest.raises(ValueError):
        mod.read_mo(b"\0" * 40)


def test_gettext_message_pairs():
    mod = load("gettext-en-fr")
    entries = [("", "Content-Type: text/plain; charset=UTF-8\n"),
               ("menu\x04_Quit", "_Quitter"),             # context dropped, mnemonic removed
               ("Save &As…", "Enregistrer &sous…"),
               ("%d file\x00%d files", "%d fichier\x00%d fichiers"),  # singular + first plural
               ("%s: %s", "%s : %s"),                      # no words: dropped
               ("Untranslated", ""),
               ("max_connections   must be\n positive", "max_connections doit être positif")]
    assert mod.message_pairs(entries) == [
        ("Quit", "Quitter"), ("Save As…", "Enregistrer sous…"), ("%d file", "%d fichier"),
        ("%d files", "%d fichiers"),
        ("max_connections must be positive", "max_connections doit être positif")]


def test_strip_mnemonic_and_letters():
    mod = load("gettext-en-fr")
    assert mod.strip_mnemonic("_Open") == "Open"
    assert mod.strip_mnemonic("E&xit") == "Exit"
    assert mod.strip_mnemonic("Open (_Read-only)") == "Open (Read-only)"
    for kept in ("file_name", "Sa_ve", "%s & %s", "__builtin_trap", "R&D &Tools", "&amp;x"):
        assert mod.strip_mnemonic(kept) == kept
    assert mod.letters("%s: %-10lu %qs") == 0 and mod.letters("%d files") == 5


# ---------------------------------------------------------------- code-docstring: Python functions

CODE = '''
import functools


def number_of_nodes(G):
    """Return the number of nodes in the graph.

    Longer text, e.g. parameters.
    """
    # counted once
    return len(G._node)


class Box:
    @functools.cache
    def area(self, scale=1):
        """area(scale) -> float

        Compute the area, i.e. width times height. Then more.
        """
        return self.w * self.h * scale

    def helper(self):
        """>>> Box().helper()"""
        return 1

    def tiny(self):
        """Do nothing at all here."""
        pass
'''


def test_function_pairs():
    mod = load("code-docstring")
    assert mod.function_pairs(CODE) == [
        ("def number_of_nodes(G): # counted once return len(G._node)",
         "Return the number of nodes in the graph."),
        ("@functools.cache def area(self, scale=1): return self.w * self.h * scale",
         "Compute the area, i.e. width times height."),
    ]
    assert mod.function_pairs("def broken(:\n") == []


def test_first_sentence_and_module_key():
    mod = load("code-docstring")
    assert mod.first_sentence("Compute the x. More text.") == "Compute the x."
    assert mod.first_sentence("Return the value of e.g. x, etc. then stop. Next.") == \
        "Return the value of e.g. x, etc. then stop."
    assert mod.first_sentence("Parse the version number\n of a string\n\nDetails.") == \
        "Parse the version number of a string"
    for rejected in ("Short one.", ":param x: the value", "Parameters:", "TODO: write docs here",
                     " ".join(["word"] * 41)):
        assert mod.first_sentence(rejected) is None
    assert mod.module_key("/usr/lib/python3/dist-packages/networkx/classes/graph.py") == \
        "networkx/classes/graph.py"
    assert mod.module_key("/usr/lib/python3.11/json/decoder.py") == "json/decoder.py"
    for skipped in ("/usr/lib/python3/dist-packages/sympy/core/tests/test_basic.py",
                    "/usr/lib/python3.11/test/test_json.py",
                    "/usr/lib/python3/dist-packages/pip/_vendor/rich/text.py",
                    "/usr/lib/python3.11/site-packages/x.py", "/usr/share/doc/x.py",
                    "/usr/lib/python3.11/json/__init__.pyc"):
        assert mod.module_key(skipped) is None


# ---------------------------------------------------------------- typed-signatures: stdlib + typeshed

STDLIB_SOURCE = '''
def find_loader(name, path=None):
    return None

class Queue:
    def _qsize(self):
        return len(self.queue)

    async def get(self, *, timeout=None):
        pass

def renamed(a, b):
    pass

def twice(x):
    pass

def untyped(x):
    pass
'''

STUB = '''
import sys
from typing import overload

def find_loader(name: str, path: str | None = ...) -> Loader | None: ...
class Queue:
    def _qsize(self) -> int: ...
    async def get(self, *, timeout: float | None = ...) -> _T: ...
def renamed(x: int, y: int) -> None: ...
if sys.version_info >= (3, 10):
    def twice(x: int) -> int: ...
else:
    def twice(x: str) -> str: ...
def untyped(x): ...
'''


def test_typed_signature_pairs():
    mod = load("typed-signatures")
    assert mod.module_pairs(STDLIB_SOURCE, STUB) == [
        ("def find_loader(name, path=None)",
         "def find_loader(name: str, path: str | None=...) -> Loader | None"),
        ("def Queue._qsize(self)", "def Queue._qsize(self) -> int"),
        ("async def Queue.get(self, *, timeout=None)",
         "async def Queue.get(self, *, timeout: float | None=...) -> _T"),
    ]  # renamed parameters, a name defined in two branches, an unannotated stub: left out
    assert mod.module_pairs("def broken(:\n", STUB) == []
    overloaded = "@overload\ndef f(x: int) -> int: ...\n@overload\ndef f(x: str) -> str: ...\n"
    assert mod.functions(mod.parse(overloaded)) == {"f": None}


# ---------------------------------------------------------------- emoji-captions: names and images

EMOJI_TEST = """\
# subgroup: person-role
1F9D1 200D 1F373                                       ; fully-qualified     # 🧑‍🍳 E12.1 cook
1F9D1 1F3FB 200D 1F373                                 ; fully-qualified     # 🧑🏻‍🍳 E12.1 cook: light skin tone
1F469 200D 2695                                        ; minimally-qualified # 👩‍⚕ E4.0 woman health worker
1F1E9 1F1EA                                            ; fully-qualified     # 🇩🇪 E2.0 flag: Germany
"""


def _emoji(names: list[str]) -> list:
    mod = load("emoji-captions")
    return [mod.Emoji(f"{0x1F000 + i:X}", n) for i, n in enumerate(names)]


def test_emoji_test_keeps_fully_qualified_names_and_codepoints():
    mod = load("emoji-captions")
    cook, toned, flag = mod.parse_emoji_test(EMOJI_TEST)
    assert (cook.name, toned.name, flag.name) == ("cook", "cook: light skin tone", "flag: Germany")
    assert toned.text == "\U0001F9D1\U0001F3FB\u200d\U0001F373"
    assert toned.file == "1f9d1-1f3fb-200d-1f373.png" and toned.key == "1f9d1-1f3fb-200d-1f373"
    assert mod.Emoji("2764 FE0F", "red heart").key == "2764"
    assert mod.parts("kiss: woman, man, dark skin tone") == [
        "kiss", "woman", "man", "dark skin tone"]


def test_compositional_hold_outs_keep_every_part_and_word_in_training(monkeypatch):
    from collections import Counter

    mod = load("emoji-captions")
    monkeypatch.setattr(mod, "N_TEST", 5)
    monkeypatch.setattr(mod, "N_DEV", 2)
    tones = ["light skin tone", "medium skin tone", "dark skin tone"]
    names = [f"{job}{': ' + t if t else ''}" for job in ("cook", "farmer", "pilot", "judge")
             for t in ["", *tones]] + ["flag: Germany", "flag: France", "red heart"]
    emoji = _emoji(names)
    where = mod.assign(emoji, seed=1)
    assert where == mod.assign(emoji[::-1], seed=1) != mod.assign(emoji, seed=2)
    held = [n for n, w in where.items() if w != "train"]
    assert Counter(where.values()) == {"train": 12, "test_compositional": 5, "dev": 2}
    train = [n for n, w in where.items() if w == "train"]
    for name in held:
        assert ":" in name and name not in ("flag: Germany", "flag: France")  # parts once only
        assert all(any(p in mod.parts(t) for t in train) for p in mod.parts(name))


def test_references_append_the_tones_and_drop_repeats():
    mod = load("emoji-captions")
    toned = mod.Emoji("1F469 1F3FD 200D 2695 FE0F", "woman health worker: medium skin tone")
    alternatives = {toned.key: ["WOMAN HEALTH WORKER".lower(), "female doctor", "a", "b", "c"]}
    assert mod.references(toned, alternatives) == [
        "woman health worker: medium skin tone", "female doctor: medium skin tone",
        "a: medium skin tone", "b: medium skin tone"]  # at most MAX_REFS = 4
    assert mod.references(mod.Emoji("1F600", "grinning face"), {}) == ["grinning face"]


def test_normalize_crops_centres_on_white_and_resizes():
    from PIL import Image

    mod = load("emoji-captions")
    image = Image.new("RGBA", (100, 50), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (10, 10, 30, 20))  # a 20 x 10 red bar
    out = mod.normalize(image, 16)
    assert out.size == (16, 16) and out.mode == "RGB"
    assert out.getpixel((8, 8)) == (255, 0, 0) and out.getpixel((8, 1)) == (255, 255, 255)


def _write_split(out: Path, split: str, rows: list[tuple[str, str, int]]) -> None:
    from PIL import Image

    for path, _, shade in rows:
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (shade, 0, 0)).save(out / path)
    (out / f"{split}.src").write_text("".join(p + "\n" for p, _, _ in rows))
    (out / f"{split}.tgt").write_text("".join(c + "\n" for _, c, _ in rows))


def test_leak_check_passes_clean_splits_and_catches_each_leak(tmp_path):
    mod = load("emoji-captions")
    splits = {
        "train": [("images/noto/a.png", "cook: light skin tone", 1),
                  ("images/noto/b.png", "farmer: dark skin tone", 2),
                  ("images/google/a.png", "cook: light skin tone", 3)],
        "dev": [("images/noto/c.png", "farmer: light skin tone", 4)],
        "test_compositional": [("images/google/d.png", "cook: dark skin tone", 5)],
        "test_style": [("images/twitter/b.png", "farmer: dark skin tone", 6)],
    }

    def check(**changed: list) -> None:
        for split, rows in {**splits, **changed}.items():
            _write_split(tmp_path, split, rows)
        mod.check(tmp_path)

    check()
    leaks = {
        "dev and test_style share": {
            "dev": [("images/twitter/b.png", "farmer: light skin tone", 4)]},
        "is a training caption": {
            "test_compositional": [("images/google/d.png", "farmer: dark skin tone", 5)]},
        r"\['medium skin tone', 'medium'\] never occur": {
            "test_compositional": [("images/google/d.png", "cook: medium skin tone", 5)]},
        "pixels of a training image": {
            "test_style": [("images/twitter/b.png", "farmer: dark skin tone", 2)]},
        "train": {"train": [*splits["train"], ("images/twitter/z.png", "cook: dark skin tone", 9)]},
        "test_style: a caption": {"test_style": [("images/twitter/b.png", "judge", 6)]},
    }
    for message, changed in leaks.items():
        with pytest.raises(AssertionError, match=message):
            check(**changed)


def test_datasource_names_cover_skin_variations(tmp_path):
    import io
    import json
    import tarfile

    mod = load("emoji-captions")
    entries = [{"unified": "1F469-200D-2695-FE0F", "name": "WOMAN HEALTH WORKER",
                "short_name": "female-doctor", "short_names": ["female-doctor", "nurse"],
                "skin_variations": {"1F3FD": {"unified": "1F469-1F3FD-200D-2695-FE0F"}}},
               {"unified": "1F1E9-1F1EA", "name": "Germany Flag", "short_name": "flag-de",
                "short_names": ["flag-de", "de"]}]
    data = json.dumps(entries).encode()
    with tarfile.open(tmp_path / "ds.tgz", "w:gz") as tar:
        info = tarfile.TarInfo("package/emoji.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    names = mod.datasource_names(tmp_path / "ds.tgz")
    assert names["1f469-200d-2695"] == names["1f469-1f3fd-200d-2695"] == [
        "woman health worker", "female doctor"]
    assert names["1f1e9-1f1ea"] == ["Germany Flag"]
