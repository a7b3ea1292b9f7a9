"""Tokenizers: ``char``, ``word`` (whitespace) and ``sentencepiece`` (trained on the training set).

Each maps a raw line to a list of string tokens and back: ``detokenize(tokenize(s))`` gives ``s``
up to whitespace normalisation, so scores are always computed on detokenized text. Literal special
strings (``<pad>``, ``</s>`` ...) are ordinary text to every tokenizer; the vocabulary lookup never
turns them into special ids (``vocabulary.py``). SentencePiece never matches its own ``<unk>``
from text either: a literal ``<unk>`` is split into ordinary pieces.

:meth:`SentencePieceTokenizer.train` turns SentencePiece's failures into one-line errors that say
what to change, and warns when it builds fewer pieces than asked for.
"""
from __future__ import annotations

import logging
import random
import re
from pathlib import Path
from typing import Iterable, Iterator, Protocol

import numpy as np

from transduce.errors import TransduceError

SPACE = "\u2581"  # "▁", stands for a space in character sequences (as in SentencePiece)
LITERAL_SPACE = SPACE * 2  # a "▁" of the text itself, in character sequences
SPM_MAX_BYTES = 4192  # SentencePiece's max_sentence_length: it skips longer training lines

log = logging.getLogger("transduce")


class Tokenizer(Protocol):
    kind: str

    def tokenize(self, text: str) -> list[str]: ...

    def detokenize(self, tokens: list[str]) -> str: ...


class WordTokenizer:
    """Splits on whitespace; joins with single spaces."""

    kind = "word"

    def __init__(self, lowercase: bool = False):
        self.lowercase = lowercase

    def tokenize(self, text: str) -> list[str]:
        return (text.lower() if self.lowercase else text).split()

    def detokenize(self, tokens: list[str]) -> str:
        return " ".join(tokens)


class CharTokenizer:
    """One token per character; runs of whitespace become a single ``▁``. A literal ``▁`` in the
    text is the token ``▁▁`` (:data:`LITERAL_SPACE`, never a character), so it comes back as
    itself."""

    kind = "char"

    def __init__(self, lowercase: bool = False):
        self.lowercase = lowercase

    def tokenize(self, text: str) -> list[str]:
        text = " ".join(text.split())
        if self.lowercase:
            text = text.lower()
        return [SPACE if c == " " else LITERAL_SPACE if c == SPACE else c for c in text]

    def detokenize(self, tokens: list[str]) -> str:
        return "".join(" " if t == SPACE else SPACE if t == LITERAL_SPACE else t
                       for t in tokens).strip()


class SentencePieceTokenizer:
    """Subword pieces from a SentencePiece model (unigram or BPE), read from ``model_file`` or
    given as ``model_proto`` (the file's bytes: :meth:`save` writes them to ``model_file``)."""

    kind = "sentencepiece"

    def __init__(self, model_file: str | Path, lowercase: bool = False,
                 model_proto: bytes | None = None):
        import sentencepiece as spm

        self.model_file = Path(model_file)
        self.lowercase = lowercase
        self.model_proto = model_proto
        self.sp = (spm.SentencePieceProcessor(model_file=str(model_file)) if model_proto is None
                   else spm.SentencePieceProcessor(model_proto=model_proto))

    def save(self) -> None:
        assert self.model_proto is not None
        self.model_file.write_bytes(self.model_proto)

    def tokenize(self, text: str) -> list[str]:
        return self.sp.encode(text.lower() if self.lowercase else text, out_type=str)

    def detokenize(self, tokens: list[str]) -> str:
        return self.sp.decode_pieces(tokens)

    def pieces(self) -> list[str]:
        """All pieces of the model except its own special symbols, in id order."""
        return [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())
                if not (self.sp.is_control(i) or self.sp.is_unknown(i))]

    @staticmethod
    def train(lines: Iterable[str], model_file: str | Path, vocab_size: int,
              model_type: str = "unigram", max_sentences: int = 1_000_000, seed: int = 1,
              lowercase: bool = False, name: str = "the training text",
              write: bool = True) -> "SentencePieceTokenizer":
        """Train on ``lines`` (sampled to ``max_sentences``) and write ``model_file`` (or only
        keep its bytes, with ``write=False``). ``lines`` is read twice, as a stream (a list, or
        :class:`~transduce.data.corpus.Lines` over files): once to count, once to pick the
        sample, the only lines held in memory. ``name`` says whose text it is, for the messages:
        no non-blank line, every line over SentencePiece's byte limit, ``vocab_size`` below the
        character set (or another failure of SentencePiece) are errors; lines over the byte
        limit and fewer pieces than ``vocab_size`` are warnings."""
        import io

        import sentencepiece as spm

        def nonblank() -> Iterator[str]:
            return (ln.lower() if lowercase else ln for ln in lines if ln.strip())

        n, kept, shortest, longest = 0, 0, None, 0
        for ln in nonblank():
            size = len(ln.encode("utf-8"))
            n, kept = n + 1, kept + (size <= SPM_MAX_BYTES)
            shortest, longest = min(size, shortest or size), max(size, longest)
        if not n:
            raise TransduceError(f"{name}: every line is blank; SentencePiece has no text to "
                                 "learn pieces from: check the files")
        if not kept:
            raise TransduceError(
                f"{name}: every line is over SentencePiece's limit of {SPM_MAX_BYTES} bytes (the "
                f"shortest has {shortest}); split the text into sentences, one per line")
        if kept < n:
            log.warning("%s: %d of %d lines are over SentencePiece's limit of %d bytes (the "
                        "longest has %d) and are left out of its training; split them into "
                        "sentences", name, n - kept, n, SPM_MAX_BYTES, longest)
        fitting = (ln for ln in nonblank() if len(ln.encode("utf-8")) <= SPM_MAX_BYTES)
        if kept > max_sentences:
            log.info("%s: SentencePiece trains on %d of the %d lines, sampled", name,
                     max_sentences, kept)
            sentences: Iterator[str] = iter(sampled(fitting, kept, max_sentences, seed))
        else:
            sentences = fitting
        model = io.BytesIO()
        kwargs = dict(sentence_iterator=sentences, model_writer=model, vocab_size=vocab_size,
                      model_type=model_type, character_coverage=1.0, pad_id=-1,
                      bos_id=-1, eos_id=-1, unk_id=0, num_threads=2, minloglevel=2,
                      hard_vocab_limit=False)
        try:
            spm.SentencePieceTrainer.train(**kwargs)
        except RuntimeError as e:
            raise _train_error(str(e), name, vocab_size) from None
        tok = SentencePieceTokenizer(model_file, lowercase=lowercase,
                                     model_proto=model.getvalue())
        built = tok.sp.get_piece_size()
        if built < vocab_size:
            log.warning("%s: SentencePiece built %d pieces, fewer than data.vocab_size=%d (the "
                        "text supports no more); set data.vocab_size: %d or give more text",
                        name, built, vocab_size, built)
        if write:
            tok.save()
        return tok


def sampled(lines: Iterable[str], n: int, k: int, seed: int) -> list[str]:
    """``random.Random(seed).sample`` of the ``n`` ``lines`` (``k`` of them, in the order it
    picks them), read as a stream: only the sample is held."""
    picked = np.array(random.Random(seed).sample(range(n), k))
    order = np.argsort(picked)
    positions, out = picked[order], [""] * k
    at = 0
    for i, ln in enumerate(lines):
        if at < k and positions[at] == i:
            out[order[at]] = ln
            at += 1
    return out


def _train_error(message: str, name: str, vocab_size: int) -> TransduceError:
    """SentencePiece's RuntimeError ("Internal: src/trainer_interface.cc(...) [check] reason")
    as a one-line error with the fix."""
    reason = " ".join(message.split("] ", 1)[-1].split())
    chars = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", reason)
    if chars:
        need = int(chars.group(2))
        return TransduceError(
            f"{name}: data.vocab_size={vocab_size} is smaller than the {need} pieces "
            f"SentencePiece needs for the text's characters and <unk>; raise data.vocab_size "
            f"to {need} or more, or use tokenizer: char")
    return TransduceError(f"{name}: SentencePiece training failed ({reason}); check "
                          "data.vocab_size and the training text")


def make_tokenizer(kind: str, lowercase: bool = False,
                   spm_file: str | Path | None = None) -> Tokenizer:
    if kind == "word":
        return WordTokenizer(lowercase)
    if kind == "char":
        return CharTokenizer(lowercase)
    if kind == "sentencepiece":
        assert spm_file is not None
        return SentencePieceTokenizer(spm_file, lowercase)
    raise ValueError(f"unknown tokenizer {kind!r}")
