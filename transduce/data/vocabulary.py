"""Vocabulary: token <-> id, with the specials ``<pad> <unk> <s> </s>`` at ids 0-3.

Text never produces a special id. The specials are reached by their ids only (``PAD_ID`` ...);
the string lookup (:attr:`Vocabulary.stoi`, :meth:`Vocabulary.encode`) holds the ordinary types
alone, so a literal ``<pad>`` or ``</s>`` in the text is an ordinary token: it gets its own id when
the training text had it (it is counted like any word) and ``<unk>`` otherwise, and decodes back
to the same literal string. This is the one lookup of every tokenizer (word, char, SentencePiece)
and of the copy model's extended ids.

The file (``vocab.*.txt``): one token per line, line i is id i - 1; lines 1-4 are the specials,
every later line an ordinary type. Files written before literal specials were ordinary types
never hold a special string after line 4, so they load unchanged; a newer file may (the literal
type), and then reads the same way.

Token types longer than :data:`MAX_TOKEN_LEN` characters (a megabyte of text with no space in it)
are left out of built vocabularies with a warning; they read as ``<unk>``.

The *extended vocabulary* of copy models (``model.copy``, see ``model/pointer.py``): source tokens
missing from the target vocabulary get temporary ids ``V, V+1, ...`` (``V`` = target vocabulary
size), numbered per sentence in order of first appearance. They can be produced (by copying
only) and are mapped back to their strings at output.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from transduce.errors import TransduceError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIALS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
MAX_TOKEN_LEN = 100  # characters; longer types are left out of built vocabularies

log = logging.getLogger("transduce")


@dataclass
class BuildStats:
    """What :meth:`Vocabulary.build` counted: distinct types and tokens in the text, the types
    over the length cap, the highest count among the others, and the tokens left as <unk>."""

    types: int = 0
    tokens: int = 0
    long_types: int = 0
    max_count: int = 0
    unk_tokens: int = 0


class Vocabulary:
    """The specials at ids 0-3, then the ordinary types ``tokens`` (each once, first occurrence
    kept). A token spelt like a special (``"</s>"``) is an ordinary type like any other.

    ``itos``: id -> string, specials included; ``stoi``: string -> id of the ordinary types only
    (the lookup text goes through: it never yields ids 0, 2 or 3)."""

    def __init__(self, tokens: Iterable[str]):
        self.itos: list[str] = list(SPECIALS)
        self.stoi: dict[str, int] = {}
        for t in tokens:
            if t not in self.stoi:
                self.stoi[t] = len(self.itos)
                self.itos.append(t)
        self.built: BuildStats | None = None  # set by build()

    @classmethod
    def build(cls, token_lists: Iterable[list[str]], min_freq: int = 1,
              max_size: int | None = None, max_token_len: int = MAX_TOKEN_LEN,
              name: str = "vocabulary") -> "Vocabulary":
        """Most frequent tokens first (ties alphabetical, so the result is deterministic).

        Types longer than ``max_token_len`` characters are left out, with a warning naming
        ``name`` and how many. The result's :attr:`built` says what the text held."""
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        stats = BuildStats(types=len(counts), tokens=sum(counts.values()))
        long = [t for t in counts if len(t) > max_token_len]
        if long:
            stats.long_types = len(long)
            log.warning("%s: left out %d token type(s) longer than %d characters (%d "
                        "occurrence(s), the longest %d characters); they read as <unk>. Is "
                        "there text without spaces in the data?", name, len(long),
                        max_token_len, sum(counts[t] for t in long), max(map(len, long)))
            for t in long:
                del counts[t]
        stats.max_count = max(counts.values(), default=0)
        ranked = sorted((t for t, c in counts.items() if c >= min_freq),
                        key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(SPECIALS))]
        stats.unk_tokens = stats.tokens - sum(counts[t] for t in ranked)
        vocab = cls(ranked)
        vocab.built = stats
        return vocab

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: list[str]) -> list[int]:
        """Tokens -> ids of ordinary types, ``<unk>`` for the rest: never a special's id but
        ``<unk>``'s, whatever the strings."""
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
        vocab = cls(tokens[4:])
        if len(vocab) != len(tokens):
            raise TransduceError(f"{path}: a token appears twice; the vocabulary file is corrupt")
        return vocab


def read_token_list(path: Path, key: str = "data.vocab_file") -> Vocabulary:
    """A vocabulary given by the user (``key``): one token per line, in order; what follows a
    tab or space on a line is ignored (SentencePiece ``.vocab`` scores, fairseq ``dict.txt``
    counts: no tokenizer makes a token with whitespace), and a first four lines that are the
    specials are skipped (a transduce ``vocab.*.txt``). Blank and repeated lines are errors
    naming the line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise TransduceError(f"{path}: no such file ({key}); give an existing file, relative to "
                             "the current directory") from None
    except UnicodeDecodeError as e:
        raise TransduceError(f"{path}: not UTF-8 text ({key}, byte {e.start}); a vocabulary "
                             "file holds one token per line in UTF-8") from None
    start = len(SPECIALS) if tuple(lines[: len(SPECIALS)]) == SPECIALS else 0
    first: dict[str, int] = {}
    for n, line in enumerate(lines[start:], start + 1):
        token = line.split("\t", 1)[0].split(" ", 1)[0]
        if not token:
            raise TransduceError(f"{path}:{n}: blank line or no token before the tab/space "
                                 f"({key}); a vocabulary file holds one token per line")
        if token in first:
            raise TransduceError(f"{path}:{n}: {token!r} appears again (first on line "
                                 f"{first[token]}) ({key}); list each token once")
        first[token] = n
    if not first:
        raise TransduceError(f"{path}: no tokens ({key}); a vocabulary file holds one token "
                             "per line")
    return Vocabulary(first)


def source_ext_ids(src_tokens: list[str], vocab: Vocabulary) -> tuple[list[int], list[str]]:
    """Source tokens as target-side ids: vocabulary ids, or extended ids ``len(vocab) + j`` for
    the j-th distinct out-of-vocabulary token. Returns (ids, the out-of-vocabulary tokens)."""
    oovs: dict[str, int] = {}
    ids = []
    for tok in src_tokens:
        i = vocab.stoi.get(tok)
        if i is None:
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
