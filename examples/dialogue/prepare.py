"""Dialogue: (message → reply) pairs from the English conversations of PyPI ``chatterbot-corpus``.

Each ``chatterbot_corpus/data/english/*.yml`` file holds ``conversations``, a list of turn lists;
every two consecutive turns of a conversation make one pair.  The files are read with YAML's
BaseLoader so that every turn stays a string (plain YAML would turn ``yes`` into ``True``).
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from prepare_utils import Pair, build, cli, held_out_size, normalize_space  # noqa: E402

SRC_LANG, TGT_LANG = "msg", "reply"  # file suffixes: train.msg, train.reply


def corpus_dir(language: str = "english") -> Path:
    """``chatterbot_corpus/data/<language>`` of the installed package."""
    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None or spec.origin is None:
        raise SystemExit("error: chatterbot-corpus is not installed "
                         "(pip install --no-deps chatterbot-corpus)")
    return Path(spec.origin).parent / "data" / language


def conversation_pairs(path: Path) -> list[Pair]:
    """Consecutive-turn pairs of one corpus file, keyed "<file>:<conversation>:<turn>"."""
    doc = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader) or {}
    pairs = []
    for c, turns in enumerate(doc.get("conversations") or []):
        if not isinstance(turns, list):
            continue
        turns = [normalize_space(t) if isinstance(t, str) else "" for t in turns]
        for t, (message, reply) in enumerate(zip(turns[:-1], turns[1:], strict=True)):
            if message and reply:
                pairs.append(Pair(f"{path.stem}:{c}:{t}", message, reply))
    return pairs


def collect() -> list[Pair]:
    files = sorted(corpus_dir().glob("*.yml"))
    pairs = [p for f in files for p in conversation_pairs(f)]
    print(f"{len(files)} conversation files, {len(pairs)} consecutive-turn pairs")
    return pairs


def main() -> None:
    args = cli(__doc__.splitlines()[0])
    size = lambda n: (held_out_size(n, 0.1),) * 2  # noqa: E731
    build(collect, args.out, SRC_LANG, TGT_LANG, seed=args.seed, force=args.force, dev_test=size)


if __name__ == "__main__":
    main()
