"""Tokenizers: ``char``, ``word`` (whitespace) and ``sentencepiece`` (trained on the training set).

Each maps a raw line to a list of string tokens and back: ``detokenize(tokenize(s))`` gives ``s``
up to whitespace normalisation, so scores are always computed on detokenized text.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Iterable, Protocol

SPACE = "\u2581"  # "▁", stands for a space in character sequences (as in SentencePiece)


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
    """One token per character; runs of whitespace become a single ``▁``."""

    kind = "char"

    def __init__(self, lowercase: bool = False):
        self.lowercase = lowercase

    def tokenize(self, text: str) -> list[str]:
        text = " ".join(text.split())
        if self.lowercase:
            text = text.lower()
        return [SPACE if c == " " else c for c in text]

    def detokenize(self, tokens: list[str]) -> str:
        return "".join(" " if t == SPACE else t for t in tokens).strip()


class SentencePieceTokenizer:
    """Subword pieces from a SentencePiece model (unigram or BPE)."""

    kind = "sentencepiece"

    def __init__(self, model_file: str | Path, lowercase: bool = False):
        import sentencepiece as spm

        self.model_file = Path(model_file)
        self.lowercase = lowercase
        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))

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
              lowercase: bool = False) -> "SentencePieceTokenizer":
        """Train on ``lines`` (sampled to ``max_sentences``) and write ``model_file``."""
        import io

        import sentencepiece as spm

        lines = [ln.lower() if lowercase else ln for ln in lines if ln.strip()]
        if len(lines) > max_sentences:
            lines = random.Random(seed).sample(lines, max_sentences)
        model = io.BytesIO()
        kwargs = dict(sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size,
                      model_type=model_type, character_coverage=1.0, pad_id=-1,
                      bos_id=-1, eos_id=-1, unk_id=0, num_threads=2, minloglevel=2,
                      hard_vocab_limit=False)
        spm.SentencePieceTrainer.train(**kwargs)
        Path(model_file).write_bytes(model.getvalue())
        return SentencePieceTokenizer(model_file, lowercase=lowercase)


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
