"""Vocabulary: token <-> id, with the specials ``<pad> <unk> <s> </s>`` at ids 0-3.

The *extended vocabulary* of copy models (``model.copy``, see ``model/pointer.py``): source tokens
missing from the target vocabulary get temporary ids ``V, V+1, ...`` (``V`` = target vocabulary
size), numbered per sentence in order of first appearance. They can be produced (by copying
only) and are mapped back to their strings at output.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterable

from transduce.errors import TransduceError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIALS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


class Vocabulary:
    """A fixed list of tokens; the first four are always the specials."""

    def __init__(self, tokens: Iterable[str]):
        self.itos: list[str] = list(SPECIALS)
        seen = set(SPECIALS)
        for t in tokens:
            if t not in seen:
                seen.add(t)
                self.itos.append(t)
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(cls, token_lists: Iterable[list[str]], min_freq: int = 1,
              max_size: int | None = None) -> "Vocabulary":
        """Most frequent tokens first (ties alphabetical, so the result is deterministic)."""
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        ranked = sorted((t for t, c in counts.items() if c >= min_freq and t not in SPECIALS),
                        key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(SPECIALS))]
        return cls(ranked)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: list[str]) -> list[int]:
        get = self.stoi.get
        return [get(t, UNK_ID) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Ids to tokens, stopping at ``</s>`` and dropping ``<pad>``/``<s>``."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i in (PAD_ID, BOS_ID):
                continue
            out.append(self.itos[i])
        return out

    def save(self, path: str | Path) -> None:
        Path(path).write_text("".join(t + "\n" for t in self.itos), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        path = Path(path)
        if not path.is_file():
            raise TransduceError(f"{path}: vocabulary file missing; is this a trained model_dir?")
        tokens = path.read_text(encoding="utf-8").split("\n")[:-1]
        if tuple(tokens[:4]) != SPECIALS:
            raise TransduceError(f"{path}: line 1-4 must be {' '.join(SPECIALS)}; "
                                 "the vocabulary file is corrupt")
        return cls(tokens[4:])


def source_ext_ids(src_tokens: list[str], vocab: Vocabulary) -> tuple[list[int], list[str]]:
    """Source tokens as target-side ids: vocabulary ids, or extended ids ``len(vocab) + j`` for
    the j-th distinct out-of-vocabulary token. Returns (ids, the out-of-vocabulary tokens)."""
    oovs: dict[str, int] = {}
    ids = []
    for tok in src_tokens:
        i = vocab.stoi.get(tok)
        if i is None or i == UNK_ID:
            i = len(vocab) + oovs.setdefault(tok, len(oovs))
        ids.append(i)
    return ids, list(oovs)


def target_ext_ids(tgt_tokens: list[str], vocab: Vocabulary, oovs: list[str]) -> list[int]:
    """Target tokens as ids for the copy loss: out-of-vocabulary tokens found in the source get
    their extended id (they can be copied), the others ``<unk>``."""
    ext = {tok: len(vocab) + j for j, tok in enumerate(oovs)}
    get = vocab.stoi.get
    return [get(t, ext.get(t, UNK_ID)) for t in tgt_tokens]


def decode_ext(ids: list[int], vocab: Vocabulary, oovs: list[str]) -> list[str]:
    """Extended ids back to tokens (as :meth:`Vocabulary.decode`, plus copied tokens)."""
    n = len(vocab)
    out = []
    for i in ids:
        if i == EOS_ID:
            break
        if i >= n:
            out.append(oovs[i - n] if i - n < len(oovs) else vocab.itos[UNK_ID])
        else:
            out.extend(vocab.decode([i]))
    return out
