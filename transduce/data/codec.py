"""A codec joins one side's tokenizer and vocabulary; :func:`encode_pairs` turns tokens into ids.

``build_codecs`` makes both sides' codecs from the training text (training SentencePiece when
asked) and saves them in model_dir; ``load_codecs`` reads them back for decoding or resume.
Files: ``vocab.src.txt``, ``vocab.tgt.txt`` and, for SentencePiece, ``spm.src.model``,
``spm.tgt.model`` (:data:`CODEC_FILES`).
"""
from __future__ import annotations

import logging
import shutil
from itertools import chain
from pathlib import Path
from typing import Iterable, Iterator

from transduce.config import DataConfig
from transduce.data.corpus import Lines, resolve_pair
from transduce.data.tokenizers import SentencePieceTokenizer, Tokenizer, make_tokenizer
from transduce.data.vocabulary import (MAX_TOKEN_LEN, SPECIALS, Vocabulary, read_token_list,
                                       source_ext_ids, target_ext_ids)
from transduce.errors import TransduceError

log = logging.getLogger("transduce")
SIDES = ("src", "tgt")
CODEC_FILES = tuple(f"{kind}.{side}.{ext}" for kind, ext in (("vocab", "txt"), ("spm", "model"))
                    for side in SIDES)

# the data settings build_codecs reads (with the training text): a change builds other codecs
CODEC_KEYS = ("tokenizer", "src_tokenizer", "tgt_tokenizer", "lowercase", "vocab_size",
              "spm_model_type", "spm_max_sentences", "min_freq", "max_vocab_size", "shared_vocab",
              "spm_model", "vocab_file", "src_type")


class Codec:
    def __init__(self, tokenizer: Tokenizer, vocab: Vocabulary):
        self.tokenizer, self.vocab = tokenizer, vocab

    def tokenize(self, text: str) -> list[str]:
        return self.tokenizer.tokenize(text)


def encode_pairs(src_tokens: list[list[str]], tgt_tokens: list[list[str]] | None,
                 src_vocab: Vocabulary, tgt_vocab: Vocabulary, copy: bool = False
                 ) -> tuple[list[list[int]], list[list[int]] | None, list[list[int]] | None,
                            list[list[str]] | None]:
    """Tokens -> ids, for training, validation and decoding alike.

    Returns (source ids, target ids or None without targets, and with ``copy`` the source as
    extended target ids and each pair's out-of-vocabulary source tokens; see
    :func:`~transduce.data.vocabulary.source_ext_ids`). With copy, target tokens found among the
    source's out-of-vocabulary tokens get their extended ids."""
    src = [src_vocab.encode(toks) for toks in src_tokens]
    if not copy:
        tgt = [tgt_vocab.encode(toks) for toks in tgt_tokens] if tgt_tokens is not None else None
        return src, tgt, None, None
    ext, oovs = [], []
    for toks in src_tokens:
        ids, unknown = source_ext_ids(toks, tgt_vocab)
        ext.append(ids)
        oovs.append(unknown)
    tgt = ([target_ext_ids(toks, tgt_vocab, unknown) for toks, unknown in zip(tgt_tokens, oovs)]
           if tgt_tokens is not None else None)
    return src, tgt, ext, oovs


def _kind(cfg: DataConfig, side: str) -> str:
    if side == "src" and cfg.src_type == "image":
        return "word"  # unused: image sources are not tokenized
    return (cfg.src_tokenizer if side == "src" else cfg.tgt_tokenizer) or cfg.tokenizer


def _names(cfg: DataConfig) -> dict[str, str]:
    """Whose text each side's tokenizer and vocabulary are built from, for the messages."""
    if not cfg.train:
        names = {"src": "the source training text", "tgt": "the target training text"}
    else:
        paths = [resolve_pair(c.path, cfg.src_lang, cfg.tgt_lang) for c in cfg.corpora()]
        names = {side: " + ".join(str(p[i]) for p in paths) for i, side in enumerate(SIDES)}
    names["shared"] = f"{names['src']} + {names['tgt']}"
    return names


def check_vocabulary(vocab: Vocabulary, name: str, cfg: DataConfig) -> None:
    """A built vocabulary must hold ordinary types (an error with the fix otherwise); a warning
    when more than half of the training tokens would read as ``<unk>``."""
    st = vocab.built
    if st is None:
        return
    if not st.tokens:
        raise TransduceError(f"{name}: every line is blank; a corpus needs text on both sides: "
                             "check the files")
    if len(vocab) == len(SPECIALS):
        if st.long_types == st.types:
            raise TransduceError(
                f"{name}: every token type is longer than {MAX_TOKEN_LEN} characters, so the "
                "vocabulary holds only the specials; is there text without spaces? Use "
                "tokenizer: char or sentencepiece")
        raise TransduceError(
            f"{name}: no token type occurs data.min_freq={cfg.min_freq} times (the most "
            f"frequent of the {st.types} types occurs {st.max_count}), so the vocabulary holds "
            "only the specials and every token would read as <unk>; lower data.min_freq")
    if 2 * st.unk_tokens > st.tokens:
        log.warning("%s: the vocabulary's %d types cover %.1f%% of the training tokens, the "
                    "other %d read as <unk> (data.min_freq=%d, data.max_vocab_size=%d); lower "
                    "data.min_freq or raise data.max_vocab_size", name, len(vocab) - len(SPECIALS),
                    100.0 * (st.tokens - st.unk_tokens) / st.tokens, st.unk_tokens, cfg.min_freq,
                    cfg.max_vocab_size)


def build_codecs(cfg: DataConfig, model_dir: Path, src_lines: Iterable[str],
                 tgt_lines: Iterable[str]) -> tuple[Codec, Codec]:
    """Build tokenizers and vocabularies from training text and save them in ``model_dir``.

    The lines are read as streams, each side a few times (lists, or
    :class:`~transduce.data.corpus.Lines` over the files): words and characters are counted line
    by line, SentencePiece trains on a sample (``data.spm_max_sentences``). Everything is built
    and checked first (:func:`check_vocabulary`, SentencePiece's failures: see
    ``tokenizers.py``) and written only then, so a failure writes no codec file."""
    text = {"src": src_lines, "tgt": tgt_lines}
    both = Lines(lambda: chain(src_lines, tgt_lines))
    kinds = {side: _kind(cfg, side) for side in SIDES}  # config.py checks shared_vocab's
    names = _names(cfg)
    tokenizers: dict[str, Tokenizer] = {}
    for side in SIDES:
        if kinds[side] == "sentencepiece":
            spm_file = model_dir / f"spm.{side}.model"
            given = cfg.given("spm_model", side)
            if given:
                tokenizers[side] = given_spm(Path(given), spm_file, cfg.lowercase)
                continue
            if cfg.shared_vocab and side == "tgt":
                tokenizers[side] = SentencePieceTokenizer(
                    spm_file, cfg.lowercase, model_proto=tokenizers["src"].model_proto)
                continue
            lines = both if cfg.shared_vocab else text[side]
            log.info("training sentencepiece (%s, %d pieces) on the %s lines",
                     cfg.spm_model_type, cfg.vocab_size, "src+tgt" if cfg.shared_vocab else side)
            tokenizers[side] = SentencePieceTokenizer.train(
                lines, spm_file, cfg.vocab_size, cfg.spm_model_type, cfg.spm_max_sentences,
                lowercase=cfg.lowercase, name=names["shared" if cfg.shared_vocab else side],
                write=False)
        else:
            tokenizers[side] = make_tokenizer(kinds[side], cfg.lowercase)

    def tokens(side: str) -> Iterator[list[str]]:
        return map(tokenizers[side].tokenize, text[side])

    vocabs: dict[str, Vocabulary] = {}
    for side in SIDES:
        given = cfg.given("vocab_file", side)
        if given:
            vocabs[side] = (vocabs["src"] if cfg.shared_vocab and side == "tgt" else
                            read_token_list(Path(given)))
            stoi, n, unk = vocabs[side].stoi, 0, 0
            for line in tokens(side):
                n += len(line)
                unk += sum(t not in stoi for t in line)
            log.info("%s vocabulary: %d types from %s (data.vocab_file), %d of %d training "
                     "tokens unknown", side, len(vocabs[side]) - len(SPECIALS), given, unk, n)
            if 2 * unk > n:
                log.warning("%s: more than half of the %s training tokens (%d of %d) are not in "
                            "it and read as <unk>; is it the vocabulary of this tokenizer and "
                            "language?", given, side, unk, n)
    if cfg.shared_vocab and not vocabs:
        shared = Vocabulary.build(chain(tokens("src"), tokens("tgt")), cfg.min_freq,
                                  cfg.max_vocab_size, name=names["shared"])
        check_vocabulary(shared, names["shared"], cfg)
        vocabs = {"src": shared, "tgt": shared}
    else:
        for side in SIDES:
            tok = tokenizers[side]
            if side in vocabs:
                continue
            if side == "src" and cfg.src_type == "image":
                vocabs[side] = Vocabulary([])  # the specials only: the layout stays the same
            elif isinstance(tok, SentencePieceTokenizer):
                vocabs[side] = Vocabulary(tok.pieces())
            else:
                vocabs[side] = Vocabulary.build(tokens(side), cfg.min_freq, cfg.max_vocab_size,
                                                name=names[side])
                check_vocabulary(vocabs[side], names[side], cfg)
    for side in SIDES:
        tok = tokenizers[side]
        if isinstance(tok, SentencePieceTokenizer):
            tok.save()
        vocabs[side].save(model_dir / f"vocab.{side}.txt")
    log.info("vocabulary: %d source, %d target types", len(vocabs["src"]), len(vocabs["tgt"]))
    return Codec(tokenizers["src"], vocabs["src"]), Codec(tokenizers["tgt"], vocabs["tgt"])


def given_spm(path: Path, spm_file: Path, lowercase: bool) -> SentencePieceTokenizer:
    """The SentencePiece model of ``data.spm_model``, to be saved as the model_dir's
    ``spm_file``."""
    try:
        proto = path.read_bytes()
    except FileNotFoundError:
        raise TransduceError(f"{path}: no such file (data.spm_model); give an existing "
                             "SentencePiece .model, relative to the current directory") from None
    try:
        tok = SentencePieceTokenizer(spm_file, lowercase, model_proto=proto)
    except RuntimeError:
        raise TransduceError(f"{path}: not a SentencePiece model (data.spm_model); give the "
                             ".model file spm_train wrote, not its .vocab") from None
    log.info("sentencepiece: %d pieces from %s (data.spm_model)", tok.sp.get_piece_size(), path)
    return tok


def load_codecs(cfg: DataConfig, model_dir: Path) -> tuple[Codec, Codec]:
    """Read the codecs saved by :func:`build_codecs`."""
    for side in SIDES:
        if not (model_dir / f"vocab.{side}.txt").is_file():
            raise TransduceError(f"{model_dir}/vocab.{side}.txt: vocabulary missing; the "
                                 "model_dir is incomplete: copy it again or retrain")
    codecs = []
    for side in SIDES:
        kind = _kind(cfg, side)
        spm_file = model_dir / f"spm.{side}.model"
        if kind == "sentencepiece" and not spm_file.is_file():
            raise TransduceError(f"{spm_file}: SentencePiece model missing from the model_dir")
        tok = make_tokenizer(kind, cfg.lowercase, spm_file)
        codecs.append(Codec(tok, Vocabulary.load(model_dir / f"vocab.{side}.txt")))
    return codecs[0], codecs[1]


def copy_codecs(src_dir: Path, out: Path) -> None:
    """Copy the tokenizer and vocabulary files of ``src_dir`` into ``out`` (fine-tuning,
    averaging: the new model_dir's ids mean what the old one's did)."""
    for name in CODEC_FILES:
        if (src_dir / name).is_file():
            shutil.copyfile(src_dir / name, out / name)


def has_codecs(model_dir: Path) -> bool:
    return all((model_dir / f"vocab.{side}.txt").is_file() for side in SIDES)
