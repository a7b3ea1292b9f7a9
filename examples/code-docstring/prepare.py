"""Code summarization: a Python function's code (source) → the first sentence of its docstring (target).

The functions come from the Python files of a fixed list of Debian packages (:data:`PACKAGES`: the
Python 3.11 standard library and SymPy, NetworkX, Django, NumPy, SciPy, pandas, Twisted, docutils,
SQLAlchemy, NLTK, Tornado, Hypothesis), parsed with :mod:`ast`; test folders and vendored copies are
left out.  For every function or method with a docstring:

* the source is its code from the ``def`` line to the end with the docstring removed (decorators,
  comments and nested functions kept), whitespace collapsed, cut at :data:`MAX_SOURCE_WORDS`;
* the target is the first sentence of the docstring's first paragraph ("Return the number of
  nodes in the graph."), kept when it has 3-40 words and starts with a letter (not ``>>>``,
  ``:param`` or a signature line such as ``f(x) -> int``).

The split key is the module's path, so all functions of one file go to the same split (methods of
one class share names and phrasing) — plus the usual rule that no dev/test source or target occurs
anywhere else.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from prepare_utils import Pair, build, cli, held_out_size, normalize_space, truncate_words  # noqa: E402

PACKAGES = [
    "libpython3.11-stdlib", "libpython3.11-minimal",  # the standard library (base image)
    "python3-sympy", "python3-networkx", "python3-django", "python3-numpy", "python3-scipy",
    "python3-pandas", "python3-twisted", "python3-docutils", "python3-sqlalchemy", "python3-nltk",
    "python3-tornado", "python3-hypothesis",
]
SRC_LANG, TGT_LANG = "code", "doc"  # file suffixes: train.code, train.doc
ROOTS = ("/usr/lib/python3/dist-packages/", "/usr/lib/python3.11/")
MAX_SOURCE_WORDS = 300
MIN_SOURCE_WORDS = 6
SUMMARY_WORDS = (3, 40)
SKIP_DIR_RE = re.compile(r"/(tests?|testing|_vendor|vendored|externals?|_?lib2to3|idle_test)/")
SENTENCE_END_RE = re.compile(r"(?<!\be\.g)(?<!\bi\.e)(?<!\betc)(?<!\bvs)([.!?])(?=\s|$)")
SIGNATURE_LINE_RE = re.compile(r"^[\w.]+\(.*\)\s*(->.*)?$")


def module_key(path: str) -> str | None:
    """The module path below its root ("sympy/core/basic.py"), or None for a file outside the
    roots or in a test/vendored folder."""
    for root in ROOTS:
        if path.startswith(root) and path.endswith(".py"):
            rel = path[len(root):]
            if rel.startswith(("site-packages/", "dist-packages/")) or SKIP_DIR_RE.search("/" + rel):
                return None
            return rel
    return None


def first_sentence(docstring: str) -> str | None:
    """The first sentence of the first paragraph, whitespace collapsed, or None when it does not
    look like a summary (see the module docstring)."""
    lines = docstring.strip().split("\n")
    if lines and SIGNATURE_LINE_RE.match(lines[0].strip()):  # "f(x, y) -> int" then the summary
        lines = lines[1:]
    paragraph = []
    for line in lines:
        if not line.strip():
            if paragraph:
                break
            continue
        paragraph.append(line)
    text = normalize_space(" ".join(paragraph))
    m = SENTENCE_END_RE.search(text)
    if m:
        text = text[:m.end()]
    n = len(text.split())
    if not (SUMMARY_WORDS[0] <= n <= SUMMARY_WORDS[1]) or not text[:1].isalpha():
        return None
    if text.endswith(":") or text.lower().startswith(("todo", "deprecated", "xxx")):
        return None
    return text


def function_pairs(code: str) -> list[tuple[str, str]]:
    """(code without its docstring, docstring summary) for each documented function of a module."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences in old modules
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError):
            return []
    lines = code.split("\n")
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        doc = ast.get_docstring(node, clean=True)
        summary = first_sentence(doc) if doc else None
        if summary is None:
            continue
        first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
        skip = range(node.body[0].lineno, node.body[0].end_lineno + 1)
        body = [lines[i - 1] for i in range(first, node.end_lineno + 1) if i not in skip]
        source = normalize_space(" ".join(body))
        if len(source.split()) < MIN_SOURCE_WORDS:
            continue
        out.append((truncate_words(source, MAX_SOURCE_WORDS), summary))
    return out


def python_files(packages: list[str]) -> dict[str, Path]:
    """Module key → file for the Python files of ``packages`` (see :func:`module_key`)."""
    out = subprocess.run(["dpkg", "-L", *packages], capture_output=True, text=True).stdout
    files = {}
    for line in out.splitlines():
        key = module_key(line)
        if key and Path(line).is_file() and not Path(line).is_symlink():
            files[key] = Path(line)
    return dict(sorted(files.items()))


def collect() -> list[Pair]:
    files = python_files(PACKAGES)
    pairs = []
    for key, path in files.items():
        code = path.read_text(encoding="utf-8", errors="replace")
        pairs += [Pair(key, src, tgt) for src, tgt in function_pairs(code)]
    print(f"{len(files)} Python modules in {len(PACKAGES)} packages, "
          f"{len(pairs)} documented functions with a one-sentence summary")
    return pairs


def main() -> None:
    args = cli(__doc__.splitlines()[0])
    size = lambda n: (held_out_size(n, 0.05, 1000),) * 2  # noqa: E731
    build(collect, args.out, SRC_LANG, TGT_LANG, seed=args.seed, force=args.force, dev_test=size)


if __name__ == "__main__":
    main()
