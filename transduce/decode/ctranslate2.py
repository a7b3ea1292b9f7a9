"""CTranslate2 (OpenNMT's inference engine for Transformers, CPU and GPU) for ``model.arch:
transformer``: :func:`export` converts a model_dir, and :class:`CTranslate2Translator` decodes
the export.

An export (``transduce export --ctranslate2 MODEL_DIR OUT``) is a model_dir without best/ and
last/: ``OUT/config.yaml`` and the tokenizer/vocabulary files of MODEL_DIR (tokenizing,
detokenizing, the decoding settings) and ``OUT/ctranslate2/``, CTranslate2's model directory.
What the conversion has to get right:

- pre-norm layers with ReLU, the final LayerNorm of each stack, LayerNorm's epsilon; embeddings
  scaled by sqrt(d) as transduce scales them; tied output embeddings are stored once
  (CTranslate2 aliases equal matrices);
- positions: transduce interleaves sines and cosines (``model/transformer.py``'s ``positions``),
  CTranslate2's built-in table puts them in two halves, so the table is given explicitly, for
  :func:`max_positions` positions;
- attention: query, key and value fused as CTranslate2 keeps them (self-attention one q|k|v
  product, cross-attention q, then k|v); the attention it returns is the last layer's cross-
  attention averaged over all heads, transduce's;
- ``<pad>`` and ``<s>`` are never outputs (``Seq2Seq.step`` sets their logits to -inf): their
  output bias is -1e4, so CTranslate2's softmax gives them no probability either (the exponential
  underflows to 0 in fp32 and fp16), and log-probabilities are transduce's;
- vocabularies: transduce's token strings (:func:`token_names`).

Decoding keeps the :class:`Translator`'s tokenizing, batching and results; the search is
CTranslate2's, asked to run as transduce's does (greedy, or beam search keeping the 2k best
extensions until k hypotheses have finished), and its finished hypotheses are ranked by
transduce's rule: CTranslate2 returns all k with ``length_penalty=1`` (with 0 it would stop at
the first one finished), the log-probability is the score times the length (``</s>``
included), and the rank is that over the GNMT length penalty plus the coverage penalty
(``decode/search.py``). Each sentence has its own maximum length (``max_len_a`` · length +
``max_len_b``), CTranslate2 one per call: a batch is decoded in one call per distinct length.
Where it can differ from transduce's own search:

- n-best lists, below the top: when more than k hypotheses finish at the last step, CTranslate2
  keeps the k best by log-probability / length before transduce ranks them;
- ``no_repeat_ngram_size``: CTranslate2 bans a token before the softmax (the others'
  probabilities renormalized), transduce after it;
- attention: CTranslate2 4.8's beam search on the CPU gives a batch's sentences the first
  step's attention of another sentence (its first step runs before the beams are expanded), so
  with attention or a coverage penalty, beam search decodes one sentence at a time.

Not available, each a one-line error: a target prefix (CTranslate2 leaves the prefix's
log-probability out of the scores, so hypotheses would rank differently), lexical constraints,
and sampling (CTranslate2 seeds its generator once per process: ``decoding.seed`` would not
reproduce samples).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from transduce import model_dir as md
from transduce.checkpoints import new_model_dir, refuse_nonempty
from transduce.config import Config, DecodingConfig
from transduce.data.batching import Batch
from transduce.data.codec import Codec
from transduce.data.vocabulary import BOS, BOS_ID, EOS, EOS_ID, PAD_ID, SPECIALS, UNK, Vocabulary
from transduce.decode.search import Hypothesis, coverage_penalty, length_penalty
from transduce.decode.translator import Translator
from transduce.errors import TransduceError
from transduce.model.quantize import is_quantized
from transduce.model.seq2seq import build_model
from transduce.model.transformer import MultiHeadAttention, positions

QUANTIZATIONS = ("float32", "int8", "int8_float32")  # export --quantization; float32: exact
NEVER = -1e4  # output bias of <pad> and <s>


def _ctranslate2():
    """The ``ctranslate2`` package (an optional dependency)."""
    try:
        import ctranslate2
    except ImportError:
        raise TransduceError("CTranslate2 is not installed: pip install 'transduce[ctranslate2]' "
                             "(or pip install ctranslate2)") from None
    return ctranslate2


def is_export(model_dir: str | Path) -> bool:
    return (Path(model_dir) / md.CTRANSLATE2).is_dir()


def token_names(vocab: Vocabulary) -> list[str]:
    """CTranslate2's vocabulary: name i for id i. CTranslate2 looks tokens up by string, and an
    ordinary type may be spelt like a special (a literal ``</s>`` in the text,
    ``data/vocabulary.py``): that one is named ``TOKEN\\nID`` (no token holds a newline)."""
    return [t if i < len(SPECIALS) or t not in SPECIALS else f"{t}\n{i}"
            for i, t in enumerate(vocab.itos)]


def max_positions(config: Config) -> int:
    """Positions in the export's tables: the longest input (``decoding.max_input_len``, else
    4 x ``data.max_src_len``) and output (``model_dir.MAX_OUTPUT_LEN``) the model_dir's own
    settings decode."""
    return max(md.MAX_OUTPUT_LEN, config.decoding.max_input_len or 4 * config.data.max_src_len)


def _array(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def _linear(spec, *layers: nn.Linear) -> None:
    """``layers`` as one linear layer, their outputs concatenated (a fused q|k|v)."""
    spec.weight = _array(torch.cat([layer.weight for layer in layers]))
    spec.bias = _array(torch.cat([layer.bias for layer in layers]))


def _norm(spec, norm: nn.LayerNorm) -> None:
    spec.gamma, spec.beta = _array(norm.weight), _array(norm.bias)


def _attention(spec, a: MultiHeadAttention, norm: nn.LayerNorm, fused: bool) -> None:
    """``fused``: self-attention (q|k|v), else cross-attention (q, then k|v)."""
    _norm(spec.layer_norm, norm)
    if fused:
        _linear(spec.linear[0], a.query, a.key, a.value)
    else:
        _linear(spec.linear[0], a.query)
        _linear(spec.linear[1], a.key, a.value)
    _linear(spec.linear[-1], a.out)


def _ffn(spec, ff: nn.Sequential, norm: nn.LayerNorm) -> None:
    _norm(spec.layer_norm, norm)
    _linear(spec.linear_0, ff[0])  # Linear, ReLU, Dropout, Linear
    _linear(spec.linear_1, ff[3])


def _stack(spec, stack: nn.Module, table: np.ndarray) -> None:
    """A stack's embeddings, positions and final norm, and each layer's sublayers."""
    embeddings = spec.embeddings[0] if isinstance(spec.embeddings, list) else spec.embeddings
    embeddings.weight = _array(stack.embed.weight)
    spec.scale_embeddings = True  # x sqrt(d)
    spec.position_encodings.encodings = table
    _norm(spec.layer_norm, stack.norm)
    for layer_spec, layer in zip(spec.layer, stack.layers):
        if hasattr(layer, "cross_attention"):  # a decoder layer
            _attention(layer_spec.self_attention, layer.self_attention, layer.norm1, fused=True)
            _attention(layer_spec.attention, layer.cross_attention, layer.norm2, fused=False)
            _ffn(layer_spec.ffn, layer.ff, layer.norm3)
        else:
            _attention(layer_spec.self_attention, layer.attention, layer.norm1, fused=True)
            _ffn(layer_spec.ffn, layer.ff, layer.norm2)


def export(model_dir: str | Path, out: str | Path, checkpoint: str = md.BEST,
           quantization: str = "float32") -> Path:
    """A new model_dir ``out`` decoding ``model_dir``'s ``checkpoint`` with CTranslate2: its
    config and tokenizer/vocabulary files, and CTranslate2's model in ``out/ctranslate2/``
    with weights in ``quantization`` (:data:`QUANTIZATIONS`; int8: int8 matrices, faster on
    the CPU, outputs may differ a little). Returns ``out``."""
    _ctranslate2()  # installed, or a one-line error
    from ctranslate2.specs import common_spec, transformer_spec

    model_dir, out = Path(model_dir), Path(out)
    if quantization not in QUANTIZATIONS:
        raise TransduceError(f"unknown quantization {quantization!r} for CTranslate2; use one "
                             f"of {', '.join(QUANTIZATIONS)}")
    refuse_nonempty(out)
    config, src, tgt, model, _ = md.load_model(model_dir, checkpoint, device="cpu")
    cfg = config.model
    if cfg.arch != "transformer":
        raise TransduceError(f"{model_dir}: model.arch is {cfg.arch}; CTranslate2 runs "
                             "Transformers (model.arch: transformer): export this one with "
                             "--int8, or train a Transformer")
    if is_quantized(model):
        raise TransduceError(f"{model_dir}: an int8 export (transduce export --int8); export "
                             "the model_dir it was exported from, with --quantization int8")
    spec = transformer_spec.TransformerSpec.from_config(
        cfg.layers, cfg.heads, pre_norm=True, activation=common_spec.Activation.RELU,
        alignment_layer=-1, alignment_heads=cfg.heads)  # attention: the last layer's, all heads
    table = _array(positions(max_positions(config), cfg.embedding_size))  # (positions, d)
    _stack(spec.encoder, model.encoder, table)
    _stack(spec.decoder, model.decoder, table)
    _linear(spec.decoder.projection, model.decoder.output)
    spec.decoder.projection.bias[[PAD_ID, BOS_ID]] = NEVER  # a copy: cat() made it
    spec.config.layer_norm_epsilon = model.encoder.norm.eps
    spec.config.unk_token, spec.config.bos_token, spec.config.eos_token = UNK, BOS, EOS
    spec.config.decoder_start_token = BOS
    spec.register_source_vocabulary(token_names(src.vocab))
    spec.register_target_vocabulary(token_names(tgt.vocab))
    try:
        spec.validate()
    except ValueError as e:
        raise TransduceError(f"{model_dir}: CTranslate2 cannot express this model ({e}); "
                             "decode it with transduce itself") from None
    spec.optimize(quantization=quantization)
    new_model_dir(model_dir, out)
    (out / md.CTRANSLATE2).mkdir()
    spec.save(str(out / md.CTRANSLATE2))
    return out


class CTranslate2Translator(Translator):
    """A :class:`Translator` whose search runs in CTranslate2 (module docstring). ``model`` is
    the Seq2Seq on the meta device: its sizes without weights, for what asks about the model
    (the parameter count, ``model.images``); ids stay on the CPU, CTranslate2 runs on
    ``engine.device``."""

    def __init__(self, engine, src: Codec, tgt: Codec, config: Config):
        with torch.device("meta"):
            model = build_model(config.model, len(src.vocab), len(tgt.vocab))
        super().__init__(model, src, tgt, config)
        self.engine, self.positions = engine, max_positions(config)
        self.src_names, self.tgt_names = token_names(src.vocab), token_names(tgt.vocab)
        self.tgt_ids = {name: i for i, name in enumerate(self.tgt_names)}

    @classmethod
    def load(cls, model_dir: str | Path, checkpoint: str = md.BEST, device: str = "auto",
             quantize: str | None = None) -> "CTranslate2Translator":
        """The export ``model_dir`` on ``device`` (auto: CUDA when CTranslate2 sees a GPU),
        with torch's number of threads."""
        ctranslate2 = _ctranslate2()
        if quantize is not None:
            raise TransduceError(f"{model_dir}: a CTranslate2 export is quantized when exported "
                                 "(export --ctranslate2 --quantization int8); drop --quantize")
        if checkpoint != md.BEST:
            raise TransduceError(f"{model_dir}: a CTranslate2 export holds the one checkpoint "
                                 "it was exported from; drop --checkpoint")
        if device == "cuda" and not ctranslate2.get_cuda_device_count():
            raise TransduceError("device cuda, but CTranslate2 sees no CUDA device; use auto "
                                 "or cpu")
        config, src, tgt = md.load_config_and_codecs(model_dir)
        try:
            engine = ctranslate2.Translator(str(Path(model_dir) / md.CTRANSLATE2), device=device,
                                            intra_threads=torch.get_num_threads())
        except (RuntimeError, ValueError) as e:
            why = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
            raise TransduceError(f"{model_dir}/{md.CTRANSLATE2}: CTranslate2 cannot load it "
                                 f"({why}); export the model again") from None
        return cls(engine, src, tgt, config)

    def _sources(self, batch: Batch) -> list[list[str]]:
        """The batch's source ids as CTranslate2's token names, without padding."""
        return [[self.src_names[i] for i in row[:n]]
                for row, n in zip(batch.src.tolist(), batch.src_lens.tolist())]

    def _fits(self, lengths: list[int]) -> None:
        if max(lengths) > self.positions:
            raise TransduceError(f"{max(lengths)} tokens: the CTranslate2 export has positions "
                                 f"for {self.positions} (what the model_dir's own decoding "
                                 "settings decode); lower decoding.max_input_len or max_len")

    def _decode(self, batch: Batch, lens: list[int], d: DecodingConfig, attention: bool,
                generator: torch.Generator | None, prefix: list[list[int]] | None,
                constraints: list[list[list[int]]] | None) -> list[list[Hypothesis]]:
        if prefix is not None:
            raise TransduceError("a target prefix is not available with a CTranslate2 export "
                                 "(its prefix decoding leaves the prefix's log-probability out "
                                 "of the scores); decode the model_dir it was exported from")
        if constraints is not None and any(constraints):
            raise TransduceError("lexical constraints are not available with a CTranslate2 "
                                 "export (CTranslate2 has none); decode the model_dir it was "
                                 "exported from")
        if d.sampling:
            raise TransduceError("sampling is not available with a CTranslate2 export (its "
                                 "random generator is seeded once per process, so "
                                 "decoding.seed would not reproduce samples); decode the "
                                 "model_dir it was exported from")
        sources = self._sources(batch)
        self._fits([*lens, *map(len, sources)])
        beam = d.beam_size  # 1: CTranslate2's greedy search, as transduce's
        alpha, beta = (0.0, 0.0) if beam == 1 else (d.length_penalty, d.coverage_penalty)
        weights = attention or beta > 0
        hyps: list[list[Hypothesis]] = [[] for _ in sources]
        for limit in sorted(set(lens)):
            rows = [r for r, n in enumerate(lens) if n == limit]
            results = self.engine.translate_batch(
                [sources[r] for r in rows], beam_size=beam, num_hypotheses=beam,
                length_penalty=1.0, max_decoding_length=limit, min_decoding_length=0,
                max_input_length=0, no_repeat_ngram_size=d.no_repeat_ngram_size,
                return_scores=True, return_end_token=True, return_attention=weights,
                max_batch_size=1 if weights and beam > 1 else 0)  # (module docstring)
            for r, result in zip(rows, results):
                hyps[r] = self._ranked(result, len(sources[r]), alpha, beta, attention)[:d.n_best]
        return hyps

    def _ranked(self, result, src_len: int, alpha: float, beta: float, attention: bool
                ) -> list[Hypothesis]:
        """A CTranslate2 TranslationResult's hypotheses, best first by transduce's ranking."""
        hyps = []
        for i, names in enumerate(result.hypotheses):
            ids = [self.tgt_ids[name] for name in names]  # ends in </s> unless cut at the limit
            logprob = result.scores[i] * len(ids)  # length_penalty=1 divided it by the length
            # (len(ids), src_len): a row per output token, </s> included
            att = torch.tensor(result.attention[i])[:, :src_len] if result.attention else None
            score = logprob / length_penalty(len(ids), alpha)
            if att is not None:
                score += coverage_penalty(att.sum(0), beta)
            hyps.append(Hypothesis(ids[:-1] if ids[-1:] == [EOS_ID] else ids, score, logprob,
                                   att if attention else None))
        return sorted(hyps, key=lambda h: -h.score)

    def _forced(self, batch: Batch, targets: list[list[int]]) -> list[float]:
        sources = self._sources(batch)
        self._fits([*map(len, sources), *(len(t) + 1 for t in targets)])
        results = self.engine.score_batch(
            sources, [[self.tgt_names[i] for i in t] for t in targets], max_input_length=0)
        return [sum(r.log_probs) for r in results]  # </s>'s included
