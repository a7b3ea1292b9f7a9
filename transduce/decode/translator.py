"""Text in, text out: a trained model with its tokenizers, vocabularies and decoding settings."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from transduce.config import Config, DecodingConfig
from transduce.data.batching import Batch, image_batch, make_batch
from transduce.data.codec import Codec, encode_pairs
from transduce.data.images import Images
from transduce.data.vocabulary import UNK_ID, decode_ext
from transduce.decode.search import (Hypothesis, beam_search, forced_logprob, greedy,
                                     max_lengths)
from transduce.errors import TransduceError
from transduce.model.quantize import quantize as quantize_model
from transduce.model.seq2seq import Seq2Seq
from transduce.model_dir import load_model

log = logging.getLogger("transduce")


@dataclass
class Result:
    text: str  # detokenized output
    score: float  # length-normalised log-probability
    src_tokens: list[str]
    tgt_tokens: list[str]
    # (len(tgt_tokens) [+1 for </s>], len(src_tokens)), with search(attention=True)
    attention: torch.Tensor | None = field(default=None, repr=False)
    # (len(tgt_tokens) [+1],) probability of copying (copy models), with search(attention=True)
    copy: torch.Tensor | None = field(default=None, repr=False)


def _texts(texts: Sequence[str], name: str = "texts") -> Sequence[str]:
    """A list of inputs; one bare string is refused (it would be read as one input per
    character)."""
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a list of strings, got one str; wrap it in a list: "
                        f"[{texts[:40]!r}]")
    return texts


class Translator:
    def __init__(self, model: Seq2Seq, src: Codec, tgt: Codec, config: Config,
                 device: torch.device | str = "cpu"):
        self.model, self.src, self.tgt, self.config = model.eval(), src, tgt, config
        self.device = torch.device(device)

    def __repr__(self) -> str:
        return (f"Translator({self.config.model_dir!r}, {self.config.data.src_lang}->"
                f"{self.config.data.tgt_lang}, vocab {len(self.src.vocab)}/{len(self.tgt.vocab)}, "
                f"{sum(p.numel() for p in self.model.parameters()):,} parameters, "
                f"{self.device})")

    @classmethod
    def load(cls, model_dir: str | Path, checkpoint: str = "best", device: str = "auto",
             quantize: str | None = None) -> "Translator":
        """Load ``model_dir/best`` (falling back to ``last``) with its config and vocabularies;
        ``quantize="int8"``: the decoder's linear layers in int8 (CPU; model/quantize.py)."""
        config, src, tgt, model, dev = load_model(model_dir, checkpoint, device)
        if quantize is not None:
            model = quantize_model(model, quantize, dev)
        return cls(model, src, tgt, config, dev)

    def translate(self, texts: Sequence[str], **options) -> list[str]:
        """One output string per input (the best hypothesis). Options as in :meth:`search`;
        n-best lists come from :meth:`search`."""
        if options.get("n_best") and self.config.decoding.override(**options).n_best > 1:
            raise TypeError(f"translate() returns one output per input; for n_best="
                            f"{options['n_best']} use search(), which returns each input's n-best "
                            "list of Result (text, score, tokens)")
        return [r[0].text if r else "" for r in self.search(texts, **options)]

    def search(self, texts: Sequence[str], *, attention: bool = False,
               prefix: str | Sequence[str] | None = None,
               constraints: Sequence[Sequence[str]] | None = None,
               **options) -> list[list[Result]]:
        """Decode ``texts``; per input, an n-best list of :class:`Result` (empty for empty input).

        ``options`` are :class:`~transduce.config.DecodingConfig` keys (``beam_size``,
        ``n_best``, ``max_len``, ``sampling``, ``temperature``, ...) overriding the config's
        ``decoding`` section; ``attention`` keeps each result's attention matrix. ``prefix``
        (one text for all inputs, or one per input): every output starts with it and goes on
        freely from there (interactive translation). ``constraints`` (per input, a list of
        target phrases): every output contains each of them (terminology; beam search with
        dynamic beam allocation, also at beam size 1).
        """
        texts, d = _texts(texts), self.config.decoding.override(**options)
        generator = None
        if d.sampling:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(self.config.seed if d.seed is None else d.seed)
        src_tokens = self._source_tokens(texts, d.max_input_len)
        if isinstance(prefix, str):
            prefix = [prefix] * len(texts)
        if prefix is not None and len(prefix) != len(texts):
            raise TransduceError(f"{len(prefix)} prefixes for {len(texts)} inputs; give one "
                                 "prefix, or one per input")
        ids, forced, ext, oovs = encode_pairs(
            src_tokens, None if prefix is None else [self.tgt.tokenize(p) for p in prefix],
            self.src.vocab, self.tgt.vocab, self.model.copy)
        phrases = self._phrases(src_tokens, constraints, d.sampling)
        order = sorted((i for i in range(len(ids)) if ids[i]), key=lambda i: -len(ids[i]))
        results: list[list[Result]] = [[] for _ in texts]
        for start in range(0, len(order), d.batch_size):
            chunk = order[start:start + d.batch_size]
            batch = self._batch(chunk, ids, ext, texts)
            lens = max_lengths(batch.src_lens, d.max_len_a, d.max_len_b)
            if d.max_len:
                lens = [min(n, d.max_len) for n in lens]
            pre = [forced[i] for i in chunk] if forced is not None else None
            if pre is not None:  # the prefix always fits
                lens = [max(n, len(p)) for n, p in zip(lens, pre)]
            cons = [phrases[i] for i in chunk] if phrases is not None else None
            if cons is not None:
                lens = self._fit(chunk, cons, lens, d.max_len)
            hyps = self._decode(batch, lens, d, attention, generator, pre, cons)
            for i, nbest in zip(chunk, hyps):
                results[i] = [self._result(h, src_tokens[i], oovs[i] if oovs else [])
                              for h in nbest]
        return results

    def _decode(self, batch: Batch, lens: list[int], d: DecodingConfig, attention: bool,
                generator: torch.Generator | None, prefix: list[list[int]] | None,
                constraints: list[list[list[int]]] | None) -> list[list[Hypothesis]]:
        """Per sentence of ``batch``, its n-best list (at most ``lens[i]`` tokens each) under
        the settings ``d``: greedy decoding or sampling, else beam search."""
        if d.sampling or (d.beam_size == 1 and d.n_best == 1 and constraints is None):
            return [[h] for h in greedy(
                self.model, batch.src, batch.src_lens, lens, sampling=d.sampling,
                temperature=d.temperature, top_k=d.top_k, top_p=d.top_p, generator=generator,
                return_attention=attention, src_ext=batch.src_ext, prefix=prefix,
                no_repeat_ngram_size=d.no_repeat_ngram_size)]
        return beam_search(
            self.model, batch.src, batch.src_lens, lens, beam_size=d.beam_size,
            n_best=d.n_best, alpha=d.length_penalty, beta=d.coverage_penalty,
            no_repeat_ngram_size=d.no_repeat_ngram_size, return_attention=attention,
            src_ext=batch.src_ext, prefix=prefix, constraints=constraints)

    def _phrases(self, src_tokens: list[list[str]], constraints: Sequence[Sequence[str]] | None,
                 sampling: bool) -> list[list[list[int]]] | None:
        """Each input's constraint phrases as target ids (with copy, a word of its source that
        the vocabulary lacks gets its extended id); a phrase the model cannot write is an
        error."""
        if constraints is None:
            return None
        if isinstance(constraints, str) or len(constraints) != len(src_tokens) or any(
                isinstance(c, str) for c in constraints):
            raise TransduceError("constraints: give one list of target phrases per input "
                                 f"({len(src_tokens)} inputs), e.g. [['Gleichung'], []]")
        if sampling and any(constraints):
            raise TransduceError("constraints need search, not sampling: drop sampling")
        out = []
        for i, (toks, phrases) in enumerate(zip(src_tokens, constraints)):
            tokens = [self.tgt.tokenize(p) for p in phrases]
            _, ids, _, _ = encode_pairs([toks] * len(tokens), tokens, self.src.vocab,
                                        self.tgt.vocab, self.model.copy)
            for phrase, pieces, pids in zip(phrases, tokens, ids or []):
                if not pids or UNK_ID in pids:
                    what = "is empty" if not pids else (
                        f"has '{pieces[pids.index(UNK_ID)]}', outside the target vocabulary")
                    raise TransduceError(f"input {i + 1}: the constraint {phrase!r} {what}; "
                                         "the model cannot write it")
            out.append(ids or [])
        return out

    @staticmethod
    def _fit(chunk: list[int], cons: list[list[list[int]]], lens: list[int],
             max_len: int | None) -> list[int]:
        """Maximum output lengths that hold the constraints: raised to their tokens, or an
        error where ``decoding.max_len`` does not allow that."""
        need = [sum(map(len, c)) for c in cons]
        for i, n in zip(chunk, need):
            if max_len is not None and n > max_len:
                raise TransduceError(f"input {i + 1}: its constraints are {n} target tokens, over "
                                     f"decoding.max_len={max_len}; raise --max-len or give "
                                     "fewer constraints")
        return [max(n, m) for n, m in zip(lens, need)]

    def _source_tokens(self, texts: Sequence[str], max_input_len: int | None
                       ) -> list[list[str]]:
        """Each input's tokens (cut to ``max_input_len``); for an image model its path alone
        (an uploaded file's bytes: ``<image>``)."""
        if self.model.images:
            return [[t if isinstance(t, str) else "<image>"] if t else [] for t in texts]
        return self._truncate([self.src.tokenize(t) for t in texts], max_input_len)

    def _batch(self, chunk: list[int], ids: list[list[int]], ext: list[list[int]] | None,
               texts: Sequence[str]) -> Batch:
        """The inputs ``chunk`` (indices) as a batch on the device: their ids (and extended ids,
        with copy), or for an image model the images at those paths, decoded."""
        if self.model.images:
            paths = [texts[i] for i in chunk]
            pixels = Images.load(paths, self.config.data.image_size).batch(range(len(paths)))
            return image_batch(pixels).to(self.device)
        return make_batch([ids[i] for i in chunk], src_ext=[ext[i] for i in chunk]
                          if ext is not None else None).to(self.device)

    def score(self, texts: Sequence[str], targets: Sequence[str]) -> list[tuple[float, float]]:
        """Forced decoding: per (input, target) pair, the target's log-probability given the
        input (its tokens and ``</s>``), and that divided by the number of those tokens; NaN for
        an empty input. Filtering parallel data, reranking."""
        texts, targets, d = _texts(texts), _texts(targets, "targets"), self.config.decoding
        if len(texts) != len(targets):
            raise TransduceError(f"{len(texts)} inputs but {len(targets)} targets; score takes "
                                 "one target per input")
        src_tokens = self._source_tokens(texts, d.max_input_len)
        ids, tgt, ext, _ = encode_pairs(src_tokens, [self.tgt.tokenize(t) for t in targets],
                                        self.src.vocab, self.tgt.vocab, self.model.copy)
        order = sorted((i for i in range(len(ids)) if ids[i]), key=lambda i: -len(ids[i]))
        scores = [(float("nan"), float("nan"))] * len(texts)
        for start in range(0, len(order), d.batch_size):
            chunk = order[start:start + d.batch_size]
            batch = self._batch(chunk, ids, ext, texts)
            logps = self._forced(batch, [tgt[i] for i in chunk])
            for i, lp in zip(chunk, logps):
                scores[i] = (lp, lp / (len(tgt[i]) + 1))
        return scores

    def _forced(self, batch: Batch, targets: list[list[int]]) -> list[float]:
        """Per sentence of ``batch``, the log-probability of its target ids and ``</s>``."""
        return forced_logprob(self.model, batch.src, batch.src_lens, targets, batch.src_ext)

    def _truncate(self, src_tokens: list[list[str]], limit: int | None) -> list[list[str]]:
        """Inputs over ``decoding.max_input_len`` tokens (default 4 x ``data.max_src_len``) are
        cut to that length, with one warning naming the first such line: an RNN has no hard
        limit, but time and memory grow with the length and quality falls far beyond the
        training lengths. Every input still gets exactly one output."""
        limit = limit or 4 * self.config.data.max_src_len
        long = [i for i, toks in enumerate(src_tokens) if len(toks) > limit]
        if not long:
            return src_tokens
        log.warning("input line %d has %d tokens, over decoding.max_input_len=%d: truncated to "
                    "%d tokens (%d such lines in all); split long inputs into sentences, or "
                    "raise decoding.max_input_len in %s", long[0] + 1, len(src_tokens[long[0]]),
                    limit, limit, len(long), "config.yaml")
        return [toks[:limit] if len(toks) > limit else toks for toks in src_tokens]

    def _result(self, h: Hypothesis, src_tokens: list[str], oovs: list[str]) -> Result:
        tokens = decode_ext(h.tokens, self.tgt.vocab, oovs)  # copied tokens kept as they were
        return Result(self.tgt.tokenizer.detokenize(tokens), h.score, src_tokens, tokens,
                      h.attention, h.copy)
