"""Rewriting: a standard-library function's signature (source) → the same signature with typeshed's
type annotations (target).

The source is the ``def`` line of a function or method of the Python 3.11 standard library
(``/usr/lib/python3.11``, the base image), the target the same function's line in the typeshed
stubs that Debian's ``python3-mypy`` ships (``mypy/typeshed/stdlib/*.pyi``)::

    def find_loader(name, path=None)
    def find_loader(name: str, path: str | None=...) -> Loader | None

Both sides are printed by :func:`ast.unparse`, so formatting does not differ between them; a method
is named with its class (``def Queue._qsize(self)``).  Most target tokens are copied from the
source: the model has to insert the types.  A function is kept when the stub defines it once
(no ``@overload``; the branches of ``if sys.version_info`` checks are searched, and a name defined
in two of them is left out), its parameter names are the same in both files, and the stub
annotates at least one parameter or the return.  The split key is the module's path.
"""
from __future__ import annotations

import ast
import subprocess
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from prepare_utils import Pair, build, cli, held_out_size  # noqa: E402

PACKAGES = ["libpython3.11-stdlib", "libpython3.11-minimal", "python3-mypy"]
SRC_LANG, TGT_LANG = "py", "pyi"  # file suffixes: train.py, train.pyi
LIB = Path("/usr/lib/python3.11")
STUBS_DIR = "mypy/typeshed/stdlib/"


def functions(tree: ast.Module) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef | None]:
    """Qualified name ("Class.method") → its definition, for the module's top-level functions and
    the methods of its (nested) classes, searching both branches of ``if`` blocks. A name defined
    twice, or decorated with ``@overload``, maps to None."""
    out: dict = {}

    def walk(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.If):
                walk(node.body, prefix)
                walk(node.orelse, prefix)
            elif isinstance(node, ast.ClassDef):
                walk(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + node.name
                overload = any((isinstance(d, ast.Name) and d.id == "overload")
                               or (isinstance(d, ast.Attribute) and d.attr == "overload")
                               for d in node.decorator_list)
                out[name] = None if overload or name in out else node

    walk(tree.body, "")
    return out


def parameter_names(args: ast.arguments) -> list[str]:
    return ([a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
            + [args.vararg.arg if args.vararg else "", args.kwarg.arg if args.kwarg else ""])


def signature(name: str, node: ast.FunctionDef | ast.AsyncFunctionDef, annotated: bool) -> str:
    """``def name(args) [-> returns]`` as ast.unparse prints it; annotations kept or dropped."""
    args = node.args
    if not annotated:
        strip = lambda a: ast.arg(arg=a.arg)  # noqa: E731
        args = ast.arguments(posonlyargs=[strip(a) for a in args.posonlyargs],
                             args=[strip(a) for a in args.args],
                             vararg=args.vararg and strip(args.vararg),
                             kwonlyargs=[strip(a) for a in args.kwonlyargs],
                             kw_defaults=args.kw_defaults,
                             kwarg=args.kwarg and strip(args.kwarg), defaults=args.defaults)
    fn = ast.FunctionDef(name=name, args=args, body=[ast.Expr(ast.Constant(...))],
                         decorator_list=[], returns=node.returns if annotated else None,
                         type_comment=None, lineno=1)
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    return prefix + ast.unparse(fn).split("\n")[0].removeprefix("def").removesuffix(":")


def annotated(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    a = node.args
    params = a.posonlyargs + a.args + a.kwonlyargs + [x for x in (a.vararg, a.kwarg) if x]
    return node.returns is not None or any(p.annotation is not None for p in params)


def parse(code: str) -> ast.Module | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences in old modules
        try:
            return ast.parse(code)
        except (SyntaxError, ValueError):
            return None


def module_pairs(source: str, stub: str) -> list[tuple[str, str]]:
    """(plain signature, annotated signature) of the functions a module and its stub share."""
    src_tree, stub_tree = parse(source), parse(stub)
    if src_tree is None or stub_tree is None:
        return []
    typed = functions(stub_tree)
    out = []
    for name, node in functions(src_tree).items():
        stub_node = typed.get(name)
        if node is None or stub_node is None or not annotated(stub_node):
            continue
        if parameter_names(node.args) != parameter_names(stub_node.args):
            continue
        out.append((signature(name, node, annotated=False),
                    signature(name, stub_node, annotated=True)))
    return out


def stub_files() -> dict[str, Path]:
    """Module path ("json/decoder.py") → its typeshed stub, for stubs of python3-mypy."""
    out = subprocess.run(["dpkg", "-L", "python3-mypy"], capture_output=True, text=True).stdout
    stubs = {}
    for line in out.splitlines():
        if STUBS_DIR in line and line.endswith(".pyi"):
            rel = line.split(STUBS_DIR, 1)[1]
            stubs[rel.removesuffix(".pyi") + ".py"] = Path(line)
    return dict(sorted(stubs.items()))


def collect() -> list[Pair]:
    pairs, modules = [], 0
    for rel, stub in stub_files().items():
        source = LIB / rel
        if not source.is_file():
            continue
        modules += 1
        found = module_pairs(source.read_text(encoding="utf-8", errors="replace"),
                             stub.read_text(encoding="utf-8"))
        pairs += [Pair(rel, src, tgt) for src, tgt in found]
    print(f"{modules} standard-library modules with a typeshed stub, {len(pairs)} annotated "
          "functions with the same parameters")
    return pairs


def main() -> None:
    args = cli(__doc__.splitlines()[0])
    size = lambda n: (held_out_size(n, 0.08, 1000),) * 2  # noqa: E731
    build(collect, args.out, SRC_LANG, TGT_LANG, seed=args.seed, force=args.force, dev_test=size)


if __name__ == "__main__":
    main()
