"""Text in, text out: a trained model with its tokenizers, vocabularies and decoding settings."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from transduce.config import Config, DecodingConfig, load_config
from transduce.data.batching import make_batch
from transduce.data.codec import Codec, has_codecs, load_codecs
from transduce.decode.search import Hypothesis, beam_search, greedy, max_lengths
from transduce.errors import TransduceError
from transduce.model.pointer import decode_ext, source_ext_ids
from transduce.model.seq2seq import Seq2Seq, build_model
from transduce.train.checkpoint import find_checkpoint, load_weights

log = logging.getLogger("transduce")


@dataclass
class Result:
    text: str  # detokenized output
    score: float  # length-normalised log-probability
    src_tokens: list[str]
    tgt_tokens: list[str]
    attention: torch.Tensor | None  # (len(tgt_tokens) [+1 for </s>], len(src_tokens))
    copy: torch.Tensor | None = None  # (len(tgt_tokens) [+1],) probability of copying (copy models)


def pick_device(name: str = "auto") -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise TransduceError("training.device=cuda but no CUDA device is available; use auto or cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


class Translator:
    def __init__(self, model: Seq2Seq, src: Codec, tgt: Codec, config: Config,
                 device: torch.device | str = "cpu"):
        self.model, self.src, self.tgt, self.config = model.eval(), src, tgt, config
        self.device = torch.device(device)

    @classmethod
    def load(cls, model_dir: str | Path, checkpoint: str = "best",
             device: str = "auto") -> "Translator":
        """Load ``model_dir/best`` (falling back to ``last``) with its config and vocabularies."""
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise TransduceError(f"{model_dir}: model directory not found")
        if not (model_dir / "config.yaml").is_file():
            raise TransduceError(f"{model_dir}/config.yaml: missing; is this a trained model_dir?")
        config = load_config(model_dir / "config.yaml")
        for side in ("src", "tgt"):
            if not (model_dir / f"vocab.{side}.txt").is_file():
                raise TransduceError(f"{model_dir}/vocab.{side}.txt: vocabulary missing; the "
                                     "model_dir is incomplete: copy it again or retrain")
        try:
            src, tgt = load_codecs(config.data, model_dir)
        except (OSError, RuntimeError, UnicodeDecodeError) as e:  # e.g. a damaged spm.*.model
            why = str(e).strip().splitlines()[0][:120] if str(e).strip() else ""
            raise TransduceError(f"{model_dir}: cannot read the tokenizer/vocabulary files "
                                 f"({type(e).__name__}: {why}); the model_dir is damaged: copy "
                                 "it again or retrain") from None
        ckpt = None
        for name in ([checkpoint] + [c for c in ("best", "last") if c != checkpoint]):
            ckpt = find_checkpoint(model_dir / name)
            if ckpt:
                break
        if ckpt is None:
            raise TransduceError(f"{model_dir}: no checkpoint (best/ or last/) found; "
                                 "train the model first")
        dev = pick_device(device)
        model = build_model(config.model, len(src.vocab), len(tgt.vocab))
        load_weights(model, ckpt, dev)
        return cls(model.to(dev), src, tgt, config, dev)

    def translate(self, texts: Sequence[str], **options) -> list[str]:
        """One output string per input (the best hypothesis). Options as in :meth:`search`."""
        return [r[0].text if r else "" for r in self.search(texts, **options)]

    def search(self, texts: Sequence[str], *, beam_size: int | None = None, n_best: int = 1,
               batch_size: int | None = None, max_len: int | None = None,
               sampling: bool | None = None, temperature: float | None = None,
               top_k: int | None = None, top_p: float | None = None,
               length_penalty: float | None = None, no_repeat_ngram_size: int | None = None,
               seed: int | None = None, attention: bool = False) -> list[list[Result]]:
        """Decode ``texts``; per input, an n-best list of :class:`Result` (empty for empty input).

        Unset options come from the config's ``decoding`` section. ``max_len`` caps the output
        length in tokens (default: ``max_len_a * src_len + max_len_b``).
        """
        d: DecodingConfig = self.config.decoding
        beam = beam_size or d.beam_size
        sampling = d.sampling if sampling is None else sampling
        if n_best > beam and not sampling:
            raise TransduceError(f"n_best ({n_best}) cannot exceed the beam size ({beam}); "
                                 f"raise the beam size (--beam-size {n_best}) or lower n_best")
        generator = None
        if sampling:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(self.config.seed if seed is None else seed)
        src_tokens = self._truncate([self.src.tokenize(t) for t in texts])
        ids = [self.src.vocab.encode(toks) for toks in src_tokens]
        ext = [source_ext_ids(toks, self.tgt.vocab) if self.model.copy else ([], [])
               for toks in src_tokens]  # (extended ids, out-of-vocabulary tokens) per input
        order = sorted((i for i in range(len(ids)) if ids[i]), key=lambda i: -len(ids[i]))
        results: list[list[Result]] = [[] for _ in texts]
        bs = batch_size or d.batch_size
        for start in range(0, len(order), bs):
            chunk = order[start:start + bs]
            batch = make_batch([ids[i] for i in chunk], src_ext=[ext[i][0] for i in chunk]
                               if self.model.copy else None).to(self.device)
            lens = max_lengths(batch.src_lens, d.max_len_a, d.max_len_b)
            if max_len:
                lens = [min(n, max_len) for n in lens]
            if sampling or (beam == 1 and n_best == 1):
                hyps = [[h] for h in greedy(
                    self.model, batch.src, batch.src_lens, lens, sampling=sampling,
                    temperature=temperature or d.temperature,
                    top_k=d.top_k if top_k is None else top_k,
                    top_p=top_p or d.top_p, generator=generator, return_attention=attention,
                    src_ext=batch.src_ext)]
            else:
                hyps = beam_search(
                    self.model, batch.src, batch.src_lens, lens, beam_size=beam, n_best=n_best,
                    alpha=d.length_penalty if length_penalty is None else length_penalty,
                    beta=d.coverage_penalty,
                    no_repeat_ngram_size=(d.no_repeat_ngram_size if no_repeat_ngram_size is None
                                          else no_repeat_ngram_size),
                    return_attention=attention, src_ext=batch.src_ext)
            for i, nbest in zip(chunk, hyps):
                results[i] = [self._result(h, src_tokens[i], ext[i][1]) for h in nbest]
        return results

    def _truncate(self, src_tokens: list[list[str]]) -> list[list[str]]:
        """Inputs over ``decoding.max_input_len`` tokens (default 4 x ``data.max_src_len``) are
        cut to that length, with one warning naming the first such line: an RNN has no hard
        limit, but time and memory grow with the length and quality falls far beyond the
        training lengths. Every input still gets exactly one output."""
        limit = self.config.decoding.max_input_len or 4 * self.config.data.max_src_len
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
